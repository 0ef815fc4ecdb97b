// Small pieces both apps share: async state, a lazily loaded screen, the
// polite live region, field wrappers that show a service's violation.
import type { ComponentChildren, ComponentType, JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { explain } from "./errors.js";

export type Async<T> = { state: "loading" } | { state: "ready"; value: T } | { state: "failed"; error: unknown };

// Runs `load` when `deps` change; the last answer wins.
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): [Async<T>, () => void] {
  const [result, setResult] = useState<Async<T>>({ state: "loading" });
  const [round, setRound] = useState(0);
  useEffect(() => {
    let current = true;
    setResult((previous) => (previous.state === "ready" ? previous : { state: "loading" }));
    load().then(
      (value) => current && setResult({ state: "ready", value }),
      (error) => current && setResult({ state: "failed", error }),
    );
    return () => {
      current = false;
    };
  }, [...deps, round]);
  return [result, () => setRound((r) => r + 1)];
}

export function Problem({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  return (
    <div class="problem" role="alert">
      <p>{explain(error)}</p>
      {onRetry && (
        <button type="button" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Loading({ label = "Loading" }: { label?: string }) {
  return (
    <p class="loading" role="status">
      {label}…
    </p>
  );
}

// A screen split off the first bundle, fetched when first shown.
export function lazy<P extends object>(load: () => Promise<ComponentType<P>>): ComponentType<P> {
  let cached: ComponentType<P> | null = null;
  return function Lazy(props: P) {
    const [component, setComponent] = useState<ComponentType<P> | null>(() => cached);
    const [error, setError] = useState<unknown>(null);
    useEffect(() => {
      if (cached) return;
      load().then(
        (c) => setComponent(() => (cached = c)),
        (e) => setError(e),
      );
    }, []);
    if (error) return <Problem error={error} />;
    if (!component) return <Loading />;
    const Component = component;
    return <Component {...props} />;
  };
}

// One polite live region per app: announcements a screen reader reads out
// without moving focus (a balance change, an event starting).
const listeners = new Set<(text: string) => void>();
export function announce(text: string): void {
  for (const listener of listeners) listener(text);
}

export function LiveRegion() {
  const [text, setText] = useState("");
  useEffect(() => {
    const listener = (t: string) => {
      // Clearing first makes the same sentence read again.
      setText("");
      setTimeout(() => setText(t), 50);
    };
    listeners.add(listener);
    return () => listeners.delete(listener);
  }, []);
  return (
    <div class="visually-hidden" role="status" aria-live="polite" aria-atomic="true" data-testid="announcer">
      {text}
    </div>
  );
}

let fieldIds = 0;

export function useId(prefix: string): string {
  const id = useRef<string | null>(null);
  if (!id.current) id.current = `${prefix}-${(fieldIds += 1)}`;
  return id.current;
}

// A labelled input with its hint and the error the service (or the form) found.
export function Field(props: {
  label: string;
  hint?: ComponentChildren;
  error?: string | undefined;
  children: (attrs: { id: string; "aria-invalid": boolean; "aria-describedby": string }) => JSX.Element;
}) {
  const id = useId("field");
  const described = [props.hint ? `${id}-hint` : "", props.error ? `${id}-error` : ""].filter(Boolean).join(" ");
  return (
    <div class={props.error ? "field invalid" : "field"}>
      <label for={id}>{props.label}</label>
      {props.children({ id, "aria-invalid": Boolean(props.error), "aria-describedby": described })}
      {props.hint && (
        <small id={`${id}-hint`} class="hint">
          {props.hint}
        </small>
      )}
      {props.error && (
        <small id={`${id}-error`} class="error">
          {props.error}
        </small>
      )}
    </div>
  );
}

// The current time, ticking every `everyMs` (countdowns).
export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return now;
}

// The location fragment as a route: "#/wheel" -> "wheel".
export function useRoute(fallback: string): [string, (route: string) => void] {
  const read = () => location.hash.replace(/^#\/?/, "").split("?")[0] || fallback;
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const onChange = () => setRoute(read());
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return [route, (next: string) => (location.hash = `#/${next}`)];
}

// Moves focus to a screen's heading when the screen changes, so keyboard and
// screen-reader users start at the top of what they asked for.
export function useFocusHeading(key: string) {
  const ref = useRef<HTMLHeadingElement>(null);
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    ref.current?.focus();
  }, [key]);
  return ref;
}
