import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { collectDefaultMetrics, Registry } from "prom-client";
import { ConfigError } from "../errors.js";

export type MetricsAddress = { host: string; port: number };

/** Parses `--metrics HOST:PORT` (IPv6 hosts in brackets; port 0 picks a free one). */
export function parseMetricsAddress(text: string, flag = "--metrics"): MetricsAddress {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):(\d{1,5})$/.exec(text.trim());
  if (!m) throw new ConfigError(`${flag} ${text}: expected HOST:PORT (for example 0.0.0.0:9464 or 127.0.0.1:9464)`);
  const port = Number(m[2]);
  if (port > 65535) throw new ConfigError(`${flag} ${text}: port ${port} is out of range (0-65535)`);
  const host = m[1] === "" ? "0.0.0.0" : m[1].replace(/^\[|\]$/g, "");
  return { host, port };
}

/**
 * A registry with Node's default metrics (RSS, heap, event-loop delay, GC, CPU) and a `process`
 * label saying which delift process it is (coordinator, worker).
 */
export function newMetricsRegistry(labels: Record<string, string>): Registry {
  const registry = new Registry();
  registry.setDefaultLabels(labels);
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 });
  return registry;
}

export type MetricsServer = { host: string; port: number; url: string; close(): Promise<void> };

/**
 * Serves the registry on GET /metrics (Prometheus text format); anything else is 404. Fails with a
 * ConfigError naming the flag when the address cannot be bound (in use, not this host's, refused).
 */
export async function startMetricsServer(address: MetricsAddress, registry: Registry, flag = "--metrics"): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" || path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("delift serves metrics on GET /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`collecting metrics failed: ${(err as Error).message}\n`),
    );
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const where = `${address.host}:${address.port}`;
      const why =
        err.code === "EADDRINUSE" ? "the address is already in use" : err.code === "EADDRNOTAVAIL" ? "that address is not one of this host's" : err.code === "EACCES" ? "permission denied (ports below 1024 need privileges)" : err.code === "ENOTFOUND" || err.code === "EAI_AGAIN" ? "the host name does not resolve" : err.message;
      reject(new ConfigError(`${flag} ${where}: cannot serve metrics there: ${why}`, { cause: err }));
    };
    server.once("error", onError);
    server.listen(address.port, address.host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = address.host.includes(":") ? `[${address.host}]` : address.host;
  return {
    host: address.host,
    port,
    url: `http://${shownHost}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
