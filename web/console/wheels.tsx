export function WheelsScreen() {
  return <p>This screen arrives with the new campaigns and games contracts.</p>;
}
