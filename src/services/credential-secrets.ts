import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { type Credential, type CredentialKey, CredentialKeySchema, CredentialKeySource } from "../../gen/oauth2broker/v1/credential_pb.js";
import type { AddCredentialKeyRequest, CredentialService } from "../../gen/oauth2broker/v1/credential_service_pb.js";
import { requireOrganisation } from "../auth/caller.js";
import type { SecretBox } from "../crypto/secret-box.js";
import { clientSecretContext, previousClientSecretContext, privateKeyContext } from "../crypto/secret-contexts.js";
import {
  generateSigningKey,
  type ParsedSigningKey,
  parseGoogleServiceAccount,
  parseJwkKey,
  parsePemKey,
  type SigningAlgorithm,
} from "../crypto/signing-keys.js";
import { DomainError, invalid, notFound } from "../errors.js";
import type { ProviderCatalog } from "../providers/catalog.js";
import type { CredentialDocument, CredentialKeyDocument, CredentialStore } from "../store/credentials.js";
import { requireText } from "../validation.js";

// CredentialService's secret rotation and signing keys (issue 24): RotateClientSecret,
// RemovePreviousClientSecret, AddCredentialKey and RemoveCredentialKey.

/** Keys a credential may hold at once: the one in use, the next, and a few being retired. */
const MAX_KEYS = 5;

export interface CredentialSecretDeps {
  credentials: CredentialStore;
  secretBox: SecretBox;
  /** The API view of a stored credential. */
  view: (document: CredentialDocument) => Credential;
  clientAssertionOf: (document: CredentialDocument) => { signingAlg: SigningAlgorithm } | undefined;
}

type SecretMethods = "rotateClientSecret" | "removePreviousClientSecret" | "addCredentialKey" | "removeCredentialKey";

export function credentialSecretMethods({ credentials, secretBox, view, clientAssertionOf }: CredentialSecretDeps): Pick<ServiceImpl<typeof CredentialService>, SecretMethods> {
  return {
    async rotateClientSecret(req, ctx) {
      const { organisationId } = req;
      requireOrganisation(ctx, organisationId, "credential");
      const id = requireText(req.id, "id", 128);
      const next = secretBox.encrypt(validateClientSecret(req.clientSecret, "client_secret"), clientSecretContext(id));
      // Conditional on the secret read here: a concurrent rotation makes this one try again.
      for (let attempt = 0; attempt < 3; attempt++) {
        const current = (await credentials.findById(organisationId, id)) ?? credentialNotFound();
        if (current.client_secret === "") invalid("id", "names a credential without a client secret (set one with UpdateCredential)");
        const previous = secretBox.encrypt(secretBox.decrypt(current.client_secret, clientSecretContext(id)), previousClientSecretContext(id));
        const rotated = await credentials.rotateClientSecret(organisationId, id, current.client_secret, next, previous);
        if (rotated !== null) return { credential: view(rotated) };
      }
      throw new DomainError("concurrent_change", "the credential changed during the rotation - try again");
    },

    async removePreviousClientSecret(req, ctx) {
      const { organisationId } = req;
      requireOrganisation(ctx, organisationId, "credential");
      const id = requireText(req.id, "id", 128);
      const document = await credentials.removePreviousClientSecret(organisationId, id);
      if (document !== null) return { credential: view(document) };
      if ((await credentials.findById(organisationId, id)) === null) credentialNotFound();
      throw new DomainError("precondition_failed", "no client-secret rotation is under way");
    },

    async addCredentialKey(req, ctx) {
      const { organisationId } = req;
      requireOrganisation(ctx, organisationId, "credential");
      const id = requireText(req.credentialId, "credential_id", 128);
      const parsed = await parseKeyInput(req.key);
      const current = (await credentials.findById(organisationId, id)) ?? credentialNotFound();
      if ((current.keys ?? []).length >= MAX_KEYS) invalid("credential_id", `already has ${MAX_KEYS} keys (remove one first)`);
      if ((current.keys ?? []).some((key) => key.kid === parsed.key.kid)) invalid("key", `has the kid of a key the credential already has`);
      const sealed = sealKey(secretBox, id, parsed.key, parsed.source);
      const document = (await credentials.addKey(organisationId, id, sealed)) ?? invalid("key", "has the kid of a key the credential already has");
      return { key: toCredentialKey(sealed), credential: view(document) };
    },

    async removeCredentialKey(req, ctx) {
      const { organisationId } = req;
      requireOrganisation(ctx, organisationId, "credential");
      const id = requireText(req.credentialId, "credential_id", 128);
      const kid = requireText(req.kid, "kid", 128);
      const current = (await credentials.findById(organisationId, id)) ?? credentialNotFound();
      const key = current.keys?.find((candidate) => candidate.kid === kid) ?? keyNotFound();
      if (clientAssertionOf(current) !== undefined && current.keys!.length === 1) {
        throw new DomainError("precondition_failed", "the last key of a private_key_jwt credential cannot be removed (add another first)");
      }
      const document = (await credentials.removeKey(organisationId, id, key)) ?? keyNotFound();
      return { credential: view(document) };
    },
  };
}

/**
 * How a credential signs client assertions, when it authenticates with private_key_jwt (its own
 * choice, else its catalog entry's): with a key of the algorithm the provider requires.
 */
export function clientAssertionOfCredential(providers: ProviderCatalog, document: CredentialDocument): { signingAlg: SigningAlgorithm } | undefined {
  const token = document.provider === undefined ? undefined : providers.get(document.provider)?.token;
  if ((document.token_endpoint_auth_method ?? token?.auth_method) !== "private_key_jwt") return undefined;
  return { signingAlg: token?.client_assertion?.signing_alg ?? "ES256" };
}

/** Seals a key for one credential: the private JWK encrypted under its own context. */
export function sealKey(secretBox: SecretBox, credentialId: string, key: ParsedSigningKey, source: CredentialKeyDocument["source"]): CredentialKeyDocument {
  return {
    kid: key.kid,
    alg: key.alg,
    source,
    private_key: secretBox.encrypt(JSON.stringify(key.privateJwk), privateKeyContext(credentialId, key.kid)),
    public_jwk: key.publicJwk,
    ...(key.serviceAccount === undefined ? {} : { service_account_email: key.serviceAccount.clientEmail, token_uri: key.serviceAccount.tokenUri }),
    create_time: new Date(),
  };
}

/** The key an AddCredentialKey request carries, parsed and checked; INVALID_ARGUMENT naming the field. */
async function parseKeyInput(key: AddCredentialKeyRequest["key"]): Promise<{ key: ParsedSigningKey; source: CredentialKeyDocument["source"] }> {
  switch (key.case) {
    case "generate": {
      const algorithm = key.value.algorithm === "" ? "ES256" : key.value.algorithm;
      if (algorithm !== "ES256" && algorithm !== "RS256") invalid("generate.algorithm", 'must be "ES256" or "RS256"');
      return { key: await generateSigningKey(algorithm as SigningAlgorithm), source: "generated" };
    }
    case "pem":
      return { key: await parsePemKey(key.value, "pem"), source: "pem" };
    case "jwk":
      return { key: await parseJwkKey(key.value, "jwk"), source: "jwk" };
    case "googleServiceAccountJson":
      return { key: await parseGoogleServiceAccount(key.value, "google_service_account_json"), source: "google_service_account" };
    default:
      return invalid("key", "is required (generate, pem, jwk or google_service_account_json)");
  }
}

const KEY_SOURCES = {
  generated: CredentialKeySource.GENERATED,
  pem: CredentialKeySource.PEM,
  jwk: CredentialKeySource.JWK,
  google_service_account: CredentialKeySource.GOOGLE_SERVICE_ACCOUNT,
} as const;

/** The API view of a key: its public half only. */
export function toCredentialKey(key: CredentialKeyDocument): CredentialKey {
  return create(CredentialKeySchema, {
    kid: key.kid,
    algorithm: key.alg,
    source: KEY_SOURCES[key.source],
    publicJwk: JSON.stringify(key.public_jwk),
    serviceAccountEmail: key.service_account_email ?? "",
    tokenUri: key.token_uri ?? "",
    createTime: timestampFromDate(key.create_time),
  });
}

function keyNotFound(): never {
  throw notFound("credential key");
}

export function credentialNotFound(): never {
  throw notFound("credential");
}

/** A client secret as every RPC that takes one accepts it (create, update, rotate). */
export function validateClientSecret(secret: string, field = "credential.client_secret"): string {
  return requireText(secret, field, 2048);
}
