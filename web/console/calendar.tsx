export function CalendarScreen() {
  return <p>This screen arrives with the new campaigns and games contracts.</p>;
}
