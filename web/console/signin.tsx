// Development sign-in for managers: a name and a role, a token from the
// gateway's development endpoint. With production keys the endpoint is absent
// and the brand's sign-in hands the console its token (docs/web.md).
import { useState } from "preact/hooks";
import { DevSignInUnavailable, devToken, type Role } from "../shared/auth.js";

export function SignIn({ onToken, expired }: { onToken: (token: string) => void; expired: boolean }) {
  const [name, setName] = useState("manager");
  const [role, setRole] = useState<Role>("campaign-manager");
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const [unavailable, setUnavailable] = useState(false);

  async function submit(event: Event) {
    event.preventDefault();
    setBusy(true);
    setProblem(null);
    try {
      onToken(await devToken(name.trim(), role));
    } catch (error) {
      if (error instanceof DevSignInUnavailable) setUnavailable(true);
      else setProblem(error instanceof Error ? error.message : String(error));
    } finally {
      setBusy(false);
    }
  }

  if (unavailable) {
    return (
      <main class="signin">
        <h1>Campaign console</h1>
        <p role="alert">Sign in through your company's sign-in: it opens the console with your session.</p>
      </main>
    );
  }
  return (
    <main class="signin">
      <h1>Campaign console</h1>
      {expired && <p role="alert">Your session ended. Sign in again.</p>}
      <form onSubmit={submit}>
        <p class="hint">Development sign-in: this gateway runs with its development secret.</p>
        <div class="field">
          <label for="manager-name">Your name</label>
          <input id="manager-name" value={name} required pattern="[A-Za-z0-9._@+\-]{1,64}" onInput={(e) => setName(e.currentTarget.value)} />
        </div>
        <fieldset class="field">
          <legend>Role</legend>
          <label>
            <input type="radio" name="role" value="campaign-manager" checked={role === "campaign-manager"} onChange={() => setRole("campaign-manager")} /> Campaign manager: campaigns and wheels
          </label>
          <label>
            <input type="radio" name="role" value="admin" checked={role === "admin"} onChange={() => setRole("admin")} /> Admin: also members' wallets and profiles
          </label>
        </fieldset>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        {problem && <p role="alert" class="error">{problem}</p>}
      </form>
    </main>
  );
}
