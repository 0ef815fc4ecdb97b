export function EventsScreen() {
  return <p>Bonus events arrive with the campaigns contract.</p>;
}
