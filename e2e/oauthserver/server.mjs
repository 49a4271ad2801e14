// A real OAuth 2.0 authorization server for credvault's end-to-end tests:
// oidc-provider (panva, certified) on 127.0.0.1, configured as the tests
// need, with a non-interactive login and two test-only endpoints.
//
// Environment:
//   PORT                   listen port (0: any free port)
//   REDIRECT_URIS          comma-separated redirect URIs of web-client
//   ACCESS_TOKEN_TTL       seconds (default 60)
//   CLIENT_CREDENTIALS_TTL seconds (default 60)
//   REFRESH_TOKEN_TTL      seconds (default 86400)
//
// Clients (all allowed the scopes openid api:read api:write):
//   cc-client / cc-secret          client_credentials, client_secret_basic
//   cc-post / cc-post-secret       client_credentials, client_secret_post
//   web-client / web-secret        authorization_code + refresh_token (PKCE S256)
//                                  + RFC 8693 token exchange, client_secret_basic
//
// Test-only endpoints:
//   POST /test/sign-in-token  -> {"sign_in_token": "..."}: single use, 60 s
//   GET  /test/stats          -> {"token": {"<grant_type>": n}, "revocation": n}
//
// Prints "ready <issuer URL>" on stdout once listening.
import Provider from 'oidc-provider';
import crypto from 'node:crypto';
import http from 'node:http';

const ttl = (name, dflt) => Number(process.env[name] || dflt);
const redirectURIs = (process.env.REDIRECT_URIS || 'http://127.0.0.1/unused').split(',').filter(Boolean);
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

const server = http.createServer();
await new Promise((resolve) => server.listen(Number(process.env.PORT || 0), '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const stats = { token: {}, revocation: 0 };
const signInTokens = new Map(); // token -> expiry (ms)

const provider = new Provider(issuer, {
  clients: [
    { client_id: 'cc-client', client_secret: 'cc-secret', grant_types: ['client_credentials'], response_types: [],
      redirect_uris: [], token_endpoint_auth_method: 'client_secret_basic', scope: 'api:read api:write' },
    { client_id: 'cc-post', client_secret: 'cc-post-secret', grant_types: ['client_credentials'], response_types: [],
      redirect_uris: [], token_endpoint_auth_method: 'client_secret_post', scope: 'api:read api:write' },
    { client_id: 'web-client', client_secret: 'web-secret', grant_types: ['authorization_code', 'refresh_token', TOKEN_EXCHANGE],
      response_types: ['code'], redirect_uris: redirectURIs, token_endpoint_auth_method: 'client_secret_basic',
      scope: 'openid api:read api:write' },
  ],
  scopes: ['openid', 'api:read', 'api:write'],
  features: {
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
  },
  pkce: { required: () => true },
  rotateRefreshToken: true,
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: ttl('ACCESS_TOKEN_TTL', 60),
    ClientCredentials: ttl('CLIENT_CREDENTIALS_TTL', 60),
    RefreshToken: ttl('REFRESH_TOKEN_TTL', 86400),
    AuthorizationCode: 60, Grant: 86400, Interaction: 600, Session: 86400, IdToken: 600,
  },
  clockTolerance: 0,
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  renderError: async (ctx, out) => { ctx.type = 'json'; ctx.body = out; },
});

// RFC 8693 token exchange of a one-time sign-in token.
provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
  const { subject_token: subject } = ctx.oidc.params;
  const expiry = signInTokens.get(subject);
  signInTokens.delete(subject);
  if (!expiry || expiry < Date.now()) {
    ctx.status = 400;
    ctx.body = { error: 'invalid_grant', error_description: 'grant request is invalid' };
    return;
  }
  const client = ctx.oidc.client;
  const grant = new provider.Grant({ clientId: client.clientId, accountId: 'user-1' });
  grant.addOIDCScope('openid');
  const grantId = await grant.save();
  const common = { accountId: 'user-1', client, grantId, scope: 'openid', gty: 'token_exchange' };
  const at = new provider.AccessToken(common);
  const accessToken = await at.save();
  const rt = new provider.RefreshToken({ ...common, expiresWithSession: false });
  const refreshToken = await rt.save();
  ctx.body = { access_token: accessToken, token_type: 'Bearer', expires_in: at.expiration, refresh_token: refreshToken, scope: 'openid',
    issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' };
}, ['subject_token', 'subject_token_type', 'audience', 'resource', 'requested_token_type'], []);

provider.use(async (ctx, next) => {
  if (ctx.path === '/test/stats' && ctx.method === 'GET') {
    ctx.body = stats;
    return;
  }
  if (ctx.path === '/test/sign-in-token' && ctx.method === 'POST') {
    const token = crypto.randomBytes(24).toString('base64url');
    signInTokens.set(token, Date.now() + 60_000);
    ctx.body = { sign_in_token: token };
    return;
  }
  if (ctx.path.startsWith('/interaction/')) {
    // Non-interactive login and consent: user-1 grants what is asked,
    // unless the login_hint says deny.
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    let result;
    if (details.params.login_hint === 'deny') {
      result = { error: 'access_denied', error_description: 'denied by test' };
    } else {
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: 'user-1', clientId: details.params.client_id });
      const missing = details.prompt.details || {};
      grant.addOIDCScope(String(details.params.scope || 'openid'));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      result = { login: { accountId: 'user-1' }, consent: { grantId: await grant.save() } };
    }
    const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(to);
    return;
  }
  await next();
  if (ctx.path === '/token' && ctx.method === 'POST') {
    const g = ctx.oidc?.params?.grant_type || 'unknown';
    stats.token[g] = (stats.token[g] || 0) + 1;
  }
  if (ctx.path === '/token/revocation' && ctx.method === 'POST') stats.revocation += 1;
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));
server.on('request', provider.callback());
process.stdout.write(`ready ${issuer}\n`);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
