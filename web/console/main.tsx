// The managers' console: the campaign calendar, campaigns, wheels and member
// lookup, each screen loaded when opened.
import "../shared/base.css";
import "./console.css";
import { render } from "preact";
import { useState } from "preact/hooks";
import { clearSession, isManager, loadSession, saveSession, takeFragmentToken, type Session } from "../shared/auth.js";
import { lazy, LiveRegion, useFocusHeading, useRoute } from "../shared/ui.js";
import { SignIn } from "./signin.js";

const Calendar = lazy(() => import("./calendar.js").then((m) => m.CalendarScreen));
const Campaigns = lazy(() => import("./campaigns.js").then((m) => m.CampaignsScreen));
const Wheels = lazy(() => import("./wheels.js").then((m) => m.WheelsScreen));
const Members = lazy(() => import("./members.js").then((m) => m.MembersScreen));
const Rewards = lazy(() => import("./rewards.js").then((m) => m.RewardsScreen));

const SCREENS = [
  { route: "calendar", label: "Calendar", screen: Calendar },
  { route: "campaigns", label: "Campaigns", screen: Campaigns },
  { route: "wheels", label: "Wheels", screen: Wheels },
  { route: "rewards", label: "Rewards", screen: Rewards },
  { route: "members", label: "Members", screen: Members },
] as const;

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const [route] = useRoute("calendar");
  const name = route.split("/")[0];
  const heading = useFocusHeading(route);
  const current = SCREENS.find((s) => s.route === name) ?? SCREENS[0];
  const Screen = current.screen;
  return (
    <>
      <a class="skip" href="#screen">Skip to content</a>
      <header class="topbar">
        <h1>Campaign console</h1>
        <nav aria-label="Screens" class="tabs">
          <ul>
            {SCREENS.map((s) => (
              <li key={s.route}>
                <a href={`#/${s.route}`} aria-current={s.route === current.route ? "page" : undefined}>{s.label}</a>
              </li>
            ))}
          </ul>
        </nav>
        <p class="who">
          {session.subject} ({session.roles.join(", ")}){" "}
          <button type="button" class="link" onClick={onSignOut}>Sign out</button>
        </p>
      </header>
      <main id="screen" tabIndex={-1}>
        <h2 class="visually-hidden" ref={heading} tabIndex={-1}>{current.label}</h2>
        {isManager(session) ? <Screen /> : <p role="alert">This console is for campaign managers and admins.</p>}
      </main>
      <LiveRegion />
    </>
  );
}

function App() {
  const [session, setSession] = useState<Session | null>(() => {
    const handed = takeFragmentToken(location, history);
    return handed ? saveSession(sessionStorage, handed) : loadSession(sessionStorage);
  });
  const [expired, setExpired] = useState(false);
  if (!session) return <SignIn expired={expired} onToken={(token) => setSession(saveSession(sessionStorage, token))} />;
  return (
    <Shell
      session={session}
      onSignOut={() => {
        clearSession(sessionStorage);
        setExpired(session.expires * 1000 <= Date.now());
        setSession(null);
      }}
    />
  );
}

render(<App />, document.getElementById("root")!);
