// Sign-in. Locally: the dev issuer's one-click sign-in that `musicvid serve` offers on loopback only.
// On AWS: Cognito's hosted UI, authorization code + PKCE (a public client: no secret in the page).
// The token lives in sessionStorage (this tab only) and is sent only in the Authorization header:
// never in a URL, never logged.

const TOKEN = "musicvid.token";
const PKCE = "musicvid.pkce";

function b64url(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(bytes = 32) {
  return b64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

export async function pkceChallenge(verifier) {
  return b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
}

export function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

export class Auth {
  // config: config.json's auth ({kind: "local", dev_sign_in, default_user} or {kind: "cognito", domain,
  // client_id, scopes}); api: the API's base URL ("" = this origin).
  constructor(config, api) {
    this.config = config || { kind: "none" };
    this.api = api;
  }

  get redirectUri() { return location.origin + location.pathname; }

  token() {
    const token = sessionStorage.getItem(TOKEN);
    if (!token) return null;
    const c = claims(token);
    if (!c || (c.exp && c.exp * 1000 < Date.now() + 5000)) {  // expired: sign in again
      sessionStorage.removeItem(TOKEN);
      return null;
    }
    return token;
  }

  user() {
    const c = claims(this.token() || "");
    return c ? (c["cognito:username"] || c.email || c.sub) : null;
  }

  forget() { sessionStorage.removeItem(TOKEN); }

  // Local development: POST /_local/sign-in {"user"} -> {"token"} (the server's own page only).
  async devSignIn(user) {
    let response;
    try {
      response = await fetch(`${this.api}/_local/sign-in`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user }),
        credentials: "omit", cache: "no-store",
      });
    } catch {
      throw new Error("The server can't be reached.");
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.message || `Sign-in refused (${response.status}).`);
    sessionStorage.setItem(TOKEN, data.token);
  }

  // Cognito hosted UI: go there with a PKCE challenge; it comes back to this page with ?code&state.
  async startHosted() {
    const { domain, client_id: clientId, scopes } = this.config;
    const verifier = randomString(48);
    const state = randomString(16);
    sessionStorage.setItem(PKCE, JSON.stringify({ verifier, state, hash: location.hash }));
    const q = new URLSearchParams({
      response_type: "code", client_id: clientId, redirect_uri: this.redirectUri,
      scope: (scopes || ["openid"]).join(" "), state,
      code_challenge: await pkceChallenge(verifier), code_challenge_method: "S256",
    });
    location.assign(`${domain}/oauth2/authorize?${q}`);
  }

  // Back from the hosted UI: exchange the code (once) for tokens, then drop ?code&state from the URL.
  // Returns true when it signed in, false when there was nothing to finish; throws on a bad answer.
  async finishHosted() {
    const params = new URLSearchParams(location.search);
    if (this.config.kind !== "cognito" || !(params.has("code") || params.has("error"))) return false;
    const saved = JSON.parse(sessionStorage.getItem(PKCE) || "null");
    sessionStorage.removeItem(PKCE);
    // The code never stays in the URL; the page the person left for the sign-in comes back.
    history.replaceState(null, "", this.redirectUri + ((saved && saved.hash) || location.hash));
    if (params.has("error")) throw new Error(`Sign-in failed: ${params.get("error_description") || params.get("error")}`);
    if (!saved || saved.state !== params.get("state")) throw new Error("Sign-in failed: the answer was not for this page.");
    const body = new URLSearchParams({
      grant_type: "authorization_code", client_id: this.config.client_id, code: params.get("code"),
      redirect_uri: this.redirectUri, code_verifier: saved.verifier,
    });
    const response = await fetch(`${this.config.domain}/oauth2/token`, {
      method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body,
      credentials: "omit", cache: "no-store",
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok || !data.id_token) throw new Error(`Sign-in failed: ${data.error || response.status}`);
    sessionStorage.setItem(TOKEN, data.id_token);  // the API takes the ID token (audience = our app client)
    return true;
  }

  signOut() {
    this.forget();
    if (this.config.kind === "cognito") {
      const q = new URLSearchParams({ client_id: this.config.client_id, logout_uri: this.redirectUri });
      location.assign(`${this.config.domain}/logout?${q}`);
    }
  }
}
