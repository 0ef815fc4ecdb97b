export function CatchScreen() {
  return <p>Catch arrives with the games contract.</p>;
}
