// Who the app acts as: a JWT from the brand's own sign-in in production, or
// from the gateway's development sign-in (POST /dev/token) on a development
// gateway. The token lives in sessionStorage (one tab, gone when it closes)
// and is sent as `Authorization: Bearer` on every call; it never goes into a
// URL the server sees.
//
// Production hand-off (docs/web.md): the brand's sign-in redirects to
//   https://<gateway>/app/#access_token=<JWT>
// The fragment never reaches a server; the app takes the token, stores it and
// removes it from the address bar and history.

export type Role = "player" | "campaign-manager" | "admin";

export interface Session {
  token: string;
  subject: string;
  roles: Role[];
  // Seconds since the epoch, from the token's `exp`.
  expires: number;
}

const KEY = "loyalty-arcade.session";

function base64UrlDecode(text: string): string {
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

// The claims the app reads for display only; the gateway verifies the token.
export function sessionFromToken(token: string): Session | null {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const claims = JSON.parse(base64UrlDecode(parts[1]!));
    if (typeof claims.sub !== "string" || typeof claims.exp !== "number") return null;
    const roles = Array.isArray(claims.roles) ? claims.roles : typeof claims.roles === "string" ? [claims.roles] : ["player"];
    return { token, subject: claims.sub, roles, expires: claims.exp };
  } catch {
    return null;
  }
}

export function isManager(session: Session): boolean {
  return session.roles.includes("campaign-manager") || session.roles.includes("admin");
}

export interface Store {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

// A token handed over in the URL fragment, taken out of the address bar.
export function takeFragmentToken(loc: Location, history: History): string | null {
  const params = new URLSearchParams(loc.hash.replace(/^#/, ""));
  const token = params.get("access_token");
  if (!token) return null;
  history.replaceState(null, "", loc.pathname + loc.search);
  return token;
}

export function loadSession(store: Store, now = Date.now() / 1000): Session | null {
  const token = store.getItem(KEY);
  if (!token) return null;
  const session = sessionFromToken(token);
  if (!session || session.expires <= now) {
    store.removeItem(KEY);
    return null;
  }
  return session;
}

export function saveSession(store: Store, token: string): Session | null {
  const session = sessionFromToken(token);
  if (session) store.setItem(KEY, token);
  return session;
}

export function clearSession(store: Store): void {
  store.removeItem(KEY);
}

export class DevSignInUnavailable extends Error {}

// The gateway's development sign-in. It exists only on a gateway running with
// its development secret: elsewhere the path is absent (404).
export async function devToken(subject: string, role: Role): Promise<string> {
  const response = await fetch("/dev/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ subject, role }),
  });
  if (response.status === 404) throw new DevSignInUnavailable("this gateway has no development sign-in");
  if (!response.ok) throw new Error((await response.text()).trim() || `sign-in failed (${response.status})`);
  const answer = (await response.json()) as { token: string };
  return answer.token;
}
