export function WheelScreen() {
  return <p>The wheel arrives with the games contract.</p>;
}
