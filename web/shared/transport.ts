// The one Connect transport both apps use: JSON over HTTP to the gateway that
// served the page (connect-src 'self'), with the session's token on every call.
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import type { DescService } from "@bufbuild/protobuf";

export type TokenSource = () => string | null;

export function authInterceptor(token: TokenSource): Interceptor {
  return (next) => async (request) => {
    const value = token();
    if (value) request.header.set("authorization", `Bearer ${value}`);
    return next(request);
  };
}

export function gatewayTransport(token: TokenSource, baseUrl = location.origin): Transport {
  return createConnectTransport({
    baseUrl,
    // JSON, so refusals carry their readable `debug` details (docs/gateway.md).
    useBinaryFormat: false,
    // Side-effect-free calls (GetWallet, GetWheel...) go as cacheable GETs.
    useHttpGet: true,
    interceptors: [authInterceptor(token)],
  });
}

export function clientFor<T extends DescService>(service: T, transport: Transport): Client<T> {
  return createClient(service, transport);
}
