export function EarnScreen() {
  return <p>Activities arrive with the campaigns contract.</p>;
}
