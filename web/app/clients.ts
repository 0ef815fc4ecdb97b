// The games, campaigns and rewards clients, for the screens split off the first bundle.
import { GamesService } from "../gen/loyalty/games/v1/games_service_pb.js";
import { CampaignsService } from "../gen/loyalty/campaigns/v1/campaigns_service_pb.js";
import { RewardsService } from "../gen/loyalty/rewards/v1/rewards_service_pb.js";
import { ProgressService } from "../gen/loyalty/progress/v1/progress_service_pb.js";
import { clientFor } from "../shared/transport.js";
import { transport } from "./api.js";

export const games = clientFor(GamesService, transport);
export const campaigns = clientFor(CampaignsService, transport);
export const rewards = clientFor(RewardsService, transport);
export const progress = clientFor(ProgressService, transport);
