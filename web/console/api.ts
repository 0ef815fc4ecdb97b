// The console's clients: the manager API through the gateway, with the
// signed-in manager's token.
import { WalletService } from "../gen/loyalty/gateway/v1/gateway_service_pb.js";
import { GamesService } from "../gen/loyalty/games/v1/games_service_pb.js";
import { CampaignsService } from "../gen/loyalty/campaigns/v1/campaigns_service_pb.js";
import { RewardsService } from "../gen/loyalty/rewards/v1/rewards_service_pb.js";
import { ProgressService } from "../gen/loyalty/progress/v1/progress_service_pb.js";
import { clientFor, gatewayTransport } from "../shared/transport.js";
import { loadSession } from "../shared/auth.js";

const transport = gatewayTransport(() => loadSession(sessionStorage)?.token ?? null);

export const wallet = clientFor(WalletService, transport);
export const games = clientFor(GamesService, transport);
export const campaigns = clientFor(CampaignsService, transport);
export const rewards = clientFor(RewardsService, transport);
export const progress = clientFor(ProgressService, transport);
