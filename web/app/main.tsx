// The player app: phone-sized first, every screen reachable by keyboard and
// announced to screen readers. The wallet is in the first bundle; the games,
// events and activities load when their tab is opened.
import "../shared/base.css";
import "./app.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { clearSession, loadSession, saveSession, takeFragmentToken, type Session } from "../shared/auth.js";
import { isUnauthenticated } from "../shared/errors.js";
import { browserZone } from "../shared/time.js";
import { lazy, LiveRegion, useFocusHeading, useRoute } from "../shared/ui.js";
import { Member } from "./session.js";
import { SignIn } from "./signin.js";
import { prefetchWallet, WalletScreen } from "./wallet.js";

const Wheel = lazy(() => import("./wheel.js").then((m) => m.WheelScreen));
const Catch = lazy(() => import("./catch.js").then((m) => m.CatchScreen));
const Events = lazy(() => import("./events.js").then((m) => m.EventsScreen));
const Earn = lazy(() => import("./earn.js").then((m) => m.EarnScreen));
const Rewards = lazy(() => import("./rewards.js").then((m) => m.RewardsScreen));
const Progress = lazy(() => import("./progress.js").then((m) => m.ProgressScreen));

const SCREENS = [
  { route: "wallet", label: "Wallet", screen: WalletScreen },
  { route: "wheel", label: "Wheel", screen: Wheel },
  { route: "catch", label: "Catch", screen: Catch },
  { route: "events", label: "Events", screen: Events },
  { route: "earn", label: "Earn", screen: Earn },
  { route: "rewards", label: "Rewards", screen: Rewards },
  { route: "progress", label: "Progress", screen: Progress },
] as const;

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const [route, go] = useRoute("wallet");
  const [zone, setZone] = useState(browserZone());
  const heading = useFocusHeading(route);
  useEffect(() => {
    // The member's zone, after the wallet: the campaigns contract loads with it.
    import("./clients.js")
      .then(({ campaigns }) => campaigns.getMember({ memberId: session.subject }))
      .then(
        (answer) => answer.member?.timeZone && setZone(answer.member.timeZone),
        (error) => isUnauthenticated(error) && onSignOut(),
      );
  }, [session.subject]);
  const current = SCREENS.find((s) => s.route === route.split("/")[0]) ?? SCREENS[0];
  const Screen = current.screen;
  return (
    <Member.Provider value={{ memberId: session.subject, zone, signOut: onSignOut }}>
      <a class="skip" href="#screen">
        Skip to content
      </a>
      <header class="topbar">
        <h1>Loyalty Arcade</h1>
        <p class="who">
          <span data-testid="member">{session.subject}</span>{" "}
          <button type="button" class="link" onClick={onSignOut}>
            Sign out
          </button>
        </p>
      </header>
      <nav aria-label="Screens" class="tabs">
        <ul>
          {SCREENS.map((s) => (
            <li key={s.route}>
              <a href={`#/${s.route}`} aria-current={s.route === current.route ? "page" : undefined} onClick={() => go(s.route)}>
                {s.label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <main id="screen" tabIndex={-1}>
        <h2 class="visually-hidden" ref={heading} tabIndex={-1}>
          {current.label}
        </h2>
        <Screen />
      </main>
      <LiveRegion />
    </Member.Provider>
  );
}

function App() {
  const [session, setSession] = useState<Session | null>(() => {
    const handed = takeFragmentToken(location, history);
    return handed ? saveSession(sessionStorage, handed) : loadSession(sessionStorage);
  });
  const [expired, setExpired] = useState(false);
  if (!session) {
    return (
      <SignIn
        expired={expired}
        onToken={(token) => {
          setSession(saveSession(sessionStorage, token));
          location.hash = "#/wallet";
        }}
      />
    );
  }
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

const signedIn = loadSession(sessionStorage);
if (signedIn && (location.hash === "" || location.hash.startsWith("#/wallet"))) prefetchWallet(signedIn.subject);
render(<App />, document.getElementById("root")!);
