export function CampaignsScreen() {
  return <p>This screen arrives with the new campaigns and games contracts.</p>;
}
