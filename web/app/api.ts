// The player app's wallet client: the first screen's only contract, so the
// games' and campaigns' descriptors (parsed when their modules load) stay out
// of the first bundle; clients.ts has the others, for screens loaded later.
import { WalletService } from "../gen/loyalty/gateway/v1/gateway_service_pb.js";
import { clientFor, gatewayTransport } from "../shared/transport.js";
import { loadSession } from "../shared/auth.js";

export const transport = gatewayTransport(() => loadSession(sessionStorage)?.token ?? null);

export const wallet = clientFor(WalletService, transport);
