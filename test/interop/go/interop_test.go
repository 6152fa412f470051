// Interop: a Go team's client, generated from the proto (gen/go), against a running broker.
// Run by test/interop/interop.test.ts, which starts the broker and sets the environment.
package interop

import (
	"context"
	"errors"
	"net/url"
	"os"
	"regexp"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/oauth2-broker/oauth2-broker/gen/go/oauth2broker/v1"
)

func dial(t *testing.T) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(os.Getenv("BROKER_GRPC_ADDR"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func authed(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+os.Getenv("BROKER_ADMIN_TOKEN"))
}

func TestInitialiseOAuth2Connection(t *testing.T) {
	conn := dial(t)
	credentials := brokerv1.NewCredentialServiceClient(conn)
	connections := brokerv1.NewConnectionServiceClient(conn)

	created, err := credentials.CreateCredential(authed(t), &brokerv1.CreateCredentialRequest{Credential: &brokerv1.Credential{
		OrganisationId: "go-team", Name: "Provider", ClientId: "go-client", ClientSecret: "go-secret", TokenUrl: "https://idp.example/token",
	}})
	if err != nil {
		t.Fatalf("CreateCredential: %v", err)
	}
	if created.GetCredential().GetClientSecretSet() != true || created.GetCredential().GetClientSecret() != "" {
		t.Fatalf("the secret must be set and never returned: %+v", created.GetCredential())
	}

	resp, err := connections.InitialiseOAuth2Connection(authed(t), &brokerv1.InitialiseOAuth2ConnectionRequest{
		OrganisationId: "go-team",
		ConnectorId:    "drive",
		Credential:     &brokerv1.CredentialReference{Id: created.GetCredential().GetId(), OrganisationId: "go-team"},
		AuthorizeUrl:   "https://idp.example/authorize?tenant=t1",
		ClientId:       "go-client",
		Scopes:         []string{"read", "write", "read"},
		AdditionalParams: "access_type=offline",
	})
	if err != nil {
		t.Fatalf("InitialiseOAuth2Connection: %v", err)
	}
	u, err := url.Parse(resp.GetUrl())
	if err != nil {
		t.Fatalf("url: %v", err)
	}
	q := u.Query()
	for key, want := range map[string]string{
		"tenant": "t1", "response_type": "code", "client_id": "go-client", "scope": "read write offline_access",
		"prompt": "login", "code_challenge_method": "S256", "access_type": "offline", "redirect_uri": os.Getenv("BROKER_PUBLIC_URL") + "/oauth2/callback",
	} {
		if got := q[key]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want exactly [%q]", key, got, want)
		}
	}
	if len(q["state"]) != 1 || !regexp.MustCompile(`^[0-9a-z]+\.[A-Za-z0-9_-]{43}$`).MatchString(q["state"][0]) {
		t.Errorf("state = %q, want one <window>.<43 characters> value", q["state"])
	}
	if resp.GetExpireTime().AsTime().Before(time.Now()) {
		t.Errorf("expire_time %v is in the past", resp.GetExpireTime().AsTime())
	}
}

func TestErrors(t *testing.T) {
	conn := dial(t)
	connections := brokerv1.NewConnectionServiceClient(conn)
	credentials := brokerv1.NewCredentialServiceClient(conn)

	_, err := credentials.ListCredentials(context.Background(), &brokerv1.ListCredentialsRequest{OrganisationId: "go-team"})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("without a token: %v, want UNAUTHENTICATED", err)
	}

	_, err = connections.InitialiseOAuth2Connection(authed(t), &brokerv1.InitialiseOAuth2ConnectionRequest{
		OrganisationId: "go-team", ConnectorId: "drive",
		Credential:   &brokerv1.CredentialReference{Id: "missing", OrganisationId: "go-team"},
		AuthorizeUrl: "https://idp.example/authorize", ClientId: "go-client", Prompt: ptr("none login"),
	})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || st.Message() != `"prompt" must not combine "none" with other values` {
		t.Fatalf("bad prompt: %v, want INVALID_ARGUMENT naming the field", err)
	}
	var field string
	for _, detail := range st.Details() {
		if badRequest, ok := detail.(*errdetails.BadRequest); ok && len(badRequest.GetFieldViolations()) == 1 {
			field = badRequest.GetFieldViolations()[0].GetField()
		}
	}
	if field != "prompt" {
		t.Errorf("google.rpc.BadRequest names %q, want \"prompt\"", field)
	}

	_, err = connections.InitialiseOAuth2Connection(authed(t), &brokerv1.InitialiseOAuth2ConnectionRequest{
		OrganisationId: "go-team", ConnectorId: "drive",
		Credential:   &brokerv1.CredentialReference{Id: "missing", OrganisationId: "go-team"},
		AuthorizeUrl: "https://idp.example/authorize", ClientId: "go-client",
	})
	if status.Code(err) != codes.NotFound {
		t.Errorf("unknown credential: %v, want NOT_FOUND", err)
	}
}

// The rules in the proto (buf.validate) travel with the generated client: protovalidate-go refuses
// the request before it is sent, naming the same field the broker names in google.rpc.BadRequest.
func TestClientSideRules(t *testing.T) {
	request := &brokerv1.InitialiseOAuth2ConnectionRequest{
		OrganisationId: "go-team", ConnectorId: "drive",
		Credential:   &brokerv1.CredentialReference{Id: "x", OrganisationId: "not an identifier"},
		AuthorizeUrl: "https://idp.example/authorize", ClientId: "go-client",
	}
	var invalid *protovalidate.ValidationError
	if err := protovalidate.Validate(request); !errors.As(err, &invalid) || len(invalid.Violations) != 1 {
		t.Fatalf("protovalidate.Validate: %v, want one violation", err)
	}
	clientField := protovalidate.FieldPathString(invalid.Violations[0].Proto.GetField())

	_, err := brokerv1.NewConnectionServiceClient(dial(t)).InitialiseOAuth2Connection(authed(t), request)
	st := status.Convert(err)
	var serverFields []string
	for _, detail := range st.Details() {
		if badRequest, ok := detail.(*errdetails.BadRequest); ok {
			for _, violation := range badRequest.GetFieldViolations() {
				serverFields = append(serverFields, violation.GetField())
			}
		}
	}
	if st.Code() != codes.InvalidArgument || len(serverFields) != 1 || serverFields[0] != clientField || clientField != "credential.organisation_id" {
		t.Fatalf("client names %q; server: %v with fields %q; want both \"credential.organisation_id\"", clientField, err, serverFields)
	}
}

func ptr[T any](v T) *T { return &v }
