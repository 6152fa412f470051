import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";

/**
 * Test catalog entries for the scripted provider on loopback, one per kind of quirk, each
 * behaving as the named provider's documentation says. They live in a temporary directory given
 * to the broker as BROKER_PROVIDERS_DIR (the loader accepts plain http for loopback hosts only).
 * `base` is the scripted provider's origin.
 */
export function scriptedCatalogEntries(base: string): Array<Record<string, unknown>> {
  const docs = "https://example.com/docs";
  const sources = { endpoints: docs, authorize: docs, token: docs };
  const endpoints = { authorize: `${base}/authorize`, token: `${base}/token`, revocation: `${base}/revoke` };
  const entries: Array<Record<string, unknown>> = [
    {
      // Slack (oauth.v2.access): comma-separated scopes, HTTP 200 errors with "ok": false, the
      // user token under authed_user when there is no bot token, the team under team.
      id: "scripted-nested",
      display_name: "Scripted nested (Slack-like)",
      documentation_url: docs,
      endpoints,
      authorize: { scope_separator: ",", offline_access: { method: "none" } },
      token: {
        auth_method: "client_secret_post",
        response: {
          access_token: ["access_token", "authed_user.access_token"],
          token_type: ["token_type", "authed_user.token_type"],
          refresh_token: ["refresh_token", "authed_user.refresh_token"],
          expires_in: ["expires_in", "authed_user.expires_in"],
          scope: ["scope", "authed_user.scope"],
          ok_field: "ok",
          error_field: "error",
        },
        // Slack's oauth.v2.access errors: a spent or revoked refresh token cannot come back.
        errors: { permanent: ["invalid_refresh_token", "invalid_grant_type"], transient: ["ratelimited", "internal_error"] },
      },
      metadata: { response: { team_id: "team.id", team_name: "team.name", authed_user_id: "authed_user.id" } },
      sources: { ...sources, metadata: docs },
    },
    {
      // Shopify / Salesforce: no token_type, no expires_in (a documented default lifetime).
      id: "scripted-defaults",
      display_name: "Scripted defaults (Shopify-like)",
      documentation_url: docs,
      endpoints,
      authorize: { offline_access: { method: "param", params: { access_type: "offline" } }, prompt_values: ["none", "consent"] },
      token: { auth_method: "client_secret_post", default_token_type: "bearer", default_expires_in: 30 },
      metadata: { response: { instance_url: "instance_url" } },
      // Salesforce: the REST API lives on the org's instance_url, which the token response names.
      api: {
        base_urls: [
          { name: "rest", url: "{instance_url}/services/data", description: "REST API" },
          { name: "apex", url: "{instance_url}/services/apexrest" },
        ],
      },
      sources: { ...sources, metadata: docs, api: docs },
    },
    {
      // Notion: HTTP Basic client authentication with a JSON body; workspace facts in the response.
      id: "scripted-json",
      display_name: "Scripted JSON body (Notion-like)",
      documentation_url: docs,
      endpoints,
      authorize: { default_params: { owner: "user" }, offline_access: { method: "none" } },
      token: { auth_method: "client_secret_basic", body_format: "json" },
      metadata: { response: { workspace_id: "workspace_id", workspace_name: "workspace_name", bot_id: "bot_id" } },
      // Notion: a fixed API host, and a Notion-Version header on every call.
      api: { base_urls: [{ name: "rest", url: "https://api.notion.example/v1" }], headers: { "Notion-Version": "2022-06-28" } },
      sources: { ...sources, metadata: docs, api: docs },
    },
    {
      // QuickBooks: the company ID comes as realmId in the callback query; a form-encoded token
      // response (GitHub's habit) is read too.
      id: "scripted-callback",
      display_name: "Scripted callback metadata (QuickBooks-like)",
      documentation_url: docs,
      endpoints,
      authorize: { offline_access: { method: "scope", scope: "offline" } },
      metadata: { callback: { realm_id: "realmId" }, callback_patterns: { realm_id: "^[0-9]{1,32}$" } },
      sources: { ...sources, metadata: docs },
    },
    {
      // Microsoft-style {tenant} path segment: a connection-level template on loopback (a
      // templated host label cannot be served from loopback, see test/providers/catalog.test.ts).
      id: "scripted-tenant",
      display_name: "Scripted tenant path (Microsoft-like)",
      documentation_url: docs,
      parameters: [{ name: "tenant", level: "connection", pattern: "^[a-z0-9][a-z0-9-]{0,62}$", description: "The tenant" }],
      endpoints: { authorize: `${base}/t/{tenant}/authorize`, token: `${base}/t/{tenant}/token`, revocation: `${base}/t/{tenant}/revoke` },
      sources: { ...sources, parameters: docs },
    },
    {
      // Microsoft's documented default tenant, `common`, used when connection_config leaves it out.
      id: "scripted-tenant-default",
      display_name: "Scripted tenant with a default (Microsoft-like)",
      documentation_url: docs,
      parameters: [{ name: "tenant", level: "connection", pattern: "^[a-z0-9][a-z0-9-]{0,62}$", default: "common", description: "The tenant" }],
      endpoints: { authorize: `${base}/t/{tenant}/authorize`, token: `${base}/t/{tenant}/token`, revocation: `${base}/t/{tenant}/revoke` },
      sources: { ...sources, parameters: docs },
    },
    {
      // Okta-style credential-level host: the whole host comes from the credential.
      id: "scripted-domain",
      display_name: "Scripted credential host (Okta-like)",
      documentation_url: docs,
      parameters: [
        { name: "domain", level: "credential", pattern: "^[a-z0-9.-]{1,253}(:[0-9]{1,5})?$", description: "The org's domain" },
      ],
      endpoints: { authorize: "https://{domain}/oauth2/v1/authorize", token: "https://{domain}/oauth2/v1/token" },
      sources: { ...sources, parameters: docs },
    },
    {
      // Zendesk-style host label under a fixed domain: rendered and checked, never called.
      id: "scripted-zendesk",
      display_name: "Scripted host label (Zendesk-like)",
      documentation_url: docs,
      parameters: [{ name: "subdomain", level: "connection", pattern: "^[a-z0-9][a-z0-9-]{0,62}$", description: "The subdomain" }],
      endpoints: { authorize: "https://{subdomain}.zendesk.com/oauth/authorizations/new", token: "https://{subdomain}.zendesk.com/oauth/tokens" },
      sources: { ...sources, parameters: docs },
    },
    {
      // RFC 6749 §2.3.1 Basic: a provider that form-decodes the ID and secret.
      id: "scripted-basic-form",
      display_name: "Scripted Basic, form-decoded",
      documentation_url: docs,
      endpoints,
      token: { auth_method: "client_secret_basic" },
      sources,
    },
    {
      // Notion's docs: base64 of `<client id>:<client secret>`, compared as sent.
      id: "scripted-basic-raw",
      display_name: "Scripted Basic, raw (Notion-like)",
      documentation_url: docs,
      endpoints,
      token: { auth_method: "client_secret_basic", basic_encoding: "raw" },
      sources,
    },
  ];
  entries.push(
    {
      // Mailchimp's metadata endpoint (OAuth scheme: dc, api_endpoint) and Xero's /connections (an
      // array: the first tenant), read right after the exchange; the API base from those values.
      id: "scripted-metadata",
      display_name: "Scripted metadata requests (Mailchimp- and Xero-like)",
      documentation_url: docs,
      endpoints,
      token: { auth_method: "client_secret_post" },
      metadata: {
        requests: [
          { url: `${base}/m/oauth2/metadata`, token_scheme: "OAuth", response: { dc: "dc", api_endpoint: "api_endpoint", account_name: "accountname" } },
          { url: `${base}/m/connections`, response: { tenant_id: "0.tenantId", tenant_name: "0.tenantName" } },
        ],
      },
      api: {
        base_urls: [
          { name: "marketing", url: "https://{dc}.api.mailchimp.example/3.0" },
          { name: "endpoint", url: "{api_endpoint}/3.0" },
        ],
        headers: { "xero-tenant-id": "{tenant_id}" },
      },
      sources: { ...sources, metadata: docs, api: docs },
    },
    {
      // TikTok's client_key for client_id; Pinterest's continuous_refresh on the exchange only.
      id: "scripted-renamed",
      display_name: "Scripted renamed client parameter and extra parameters (TikTok- and Pinterest-like)",
      documentation_url: docs,
      endpoints,
      token: {
        auth_method: "client_secret_post",
        client_id_param: "client_key",
        extra_params: { exchange: { continuous_refresh: "true" }, refresh: { refresh_mode: "rotate" } },
      },
      sources,
    },
    ...revocationEntries(base, endpoints, sources),
  );
  return entries.map((entry) => ({ category: "other", ...entry }));
}

/** One entry per kind of revocation request, each as the named provider's docs describe it. */
function revocationEntries(base: string, endpoints: Record<string, string>, sources: Record<string, string>): Array<Record<string, unknown>> {
  const docs = "https://example.com/docs";
  const entry = (id: string, display: string, rest: Record<string, unknown>) => ({
    id,
    display_name: display,
    documentation_url: docs,
    endpoints: { authorize: endpoints.authorize, token: endpoints.token },
    sources: { ...sources, revocation: docs },
    ...rest,
  });
  return [
    // Notion: POST a JSON body {"token": ...} with HTTP Basic client credentials and Notion-Version.
    entry("scripted-revoke-json", "Scripted revocation, JSON and Basic (Notion-like)", {
      token: { auth_method: "client_secret_basic", basic_encoding: "raw", body_format: "json" },
      revocation: { supported: true, url: `${base}/r/v1/oauth/revoke`, token_in: "json", token_type_hint: false, client_auth: "basic", headers: { "Notion-Version": "2022-06-28" } },
    }),
    // GitHub: DELETE /applications/{client_id}/grant, Basic client credentials, {"access_token": ...}, 204.
    entry("scripted-revoke-grant", "Scripted grant deletion (GitHub-like)", {
      revocation: {
        supported: true, method: "DELETE", url: `${base}/r/applications/{client_id}/grant`, token: "access_token",
        token_in: "json", token_param: "access_token", token_type_hint: false, client_auth: "basic", success_status: [204],
      },
    }),
    // The token in the query string, no client authentication.
    entry("scripted-revoke-query", "Scripted revocation, token in the query", {
      revocation: { supported: true, url: `${base}/r/deauthorize`, token: "access_token", token_in: "query", token_param: "access_token", token_type_hint: false, client_auth: "none" },
    }),
    // Slack's auth.revoke: the token authenticates the call; errors are HTTP 200 with ok false.
    entry("scripted-revoke-bearer", "Scripted revocation, bearer (Slack-like)", {
      token: { auth_method: "client_secret_post", response: { ok_field: "ok", error_field: "error" } },
      revocation: { supported: true, method: "GET", url: `${base}/r/api/auth.revoke`, token: "access_token", token_in: "bearer", client_auth: "none" },
    }),
    // A provider whose docs offer no revocation.
    entry("scripted-revoke-none", "Scripted, no revocation", { endpoints: { ...endpoints }, revocation: { supported: false } }),
  ];
}

/** Writes entries as providers/<id>.yaml files in a new temporary directory; returns it. */
export function writeCatalog(entries: ReadonlyArray<Record<string, unknown>>, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "providers-"));
  for (const entry of entries) writeFileSync(join(dir, `${String(entry.id)}.yaml`), stringify(entry));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}
