// A development member needs a marketing profile before campaigns pay them
// (its zone decides their local days). The development sign-in creates it
// with a short-lived admin token from the same development endpoint; the
// player's own token never carries that role. Production members come from
// the brand's systems (UpsertMember from its back end).
import { createClient, Code, ConnectError } from "@connectrpc/connect";
import { CampaignsService } from "../gen/loyalty/campaigns/v1/campaigns_service_pb.js";
import { devToken } from "../shared/auth.js";
import { gatewayTransport } from "../shared/transport.js";

export async function ensureMember(memberId: string, zone: string): Promise<void> {
  const admin = await devToken("dev-sign-in", "admin");
  const campaigns = createClient(CampaignsService, gatewayTransport(() => admin));
  try {
    await campaigns.getMember({ memberId });
  } catch (error) {
    if (ConnectError.from(error).code !== Code.NotFound) throw error;
    await campaigns.upsertMember({ member: { memberId, timeZone: zone } });
  }
}
