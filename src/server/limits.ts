/**
 * What clients may hold of the server: time and open connections, per peer address and in total,
 * so that a client that opens connections and stalls cannot crowd out kube-apiserver. At a limit
 * the server sheds what costs a real review least before it refuses anything. The rules and the
 * defaults are stated in the README ("Limits", under "The server").
 */
import type { Server, Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { TwokeyError } from '../errors.ts';

export interface ClientLimitOptions {
  /** Connections open at once. */
  readonly maxConnections: number;
  /** Connections open at once from one peer address. */
  readonly maxConnectionsPerPeer: number;
}

/** How long a client may take, from what kube-apiserver needs of a webhook. */
export const TIMEOUTS = {
  tlsHandshakeMs: 10_000,
  headersMs: 10_000,
  requestMs: 30_000,
  keepAliveMs: 72_000,
} as const;

/** Fastify server options that apply TIMEOUTS, over TLS with these credentials or over plain HTTP. */
export function timeoutOptions<T extends object>(https?: T) {
  const node = {
    headersTimeout: TIMEOUTS.headersMs,
    // Node checks the headers and request timeouts this often (every 30 s by default, which would
    // let a stalled request outlive its timeout by as much).
    connectionsCheckingInterval: 1000,
  };
  return {
    requestTimeout: TIMEOUTS.requestMs,
    keepAliveTimeout: TIMEOUTS.keepAliveMs,
    ...(https ? { https: { ...https, ...node, handshakeTimeout: TIMEOUTS.tlsHandshakeMs } } : { http: node }),
  };
}

export const DEFAULT_CLIENT_LIMITS: ClientLimitOptions = {
  maxConnections: 1024,
  maxConnectionsPerPeer: 256,
};

/** Which limit made the server close a connection, for the metric. */
export type ShedReason = 'connections' | 'peer-connections';

interface Peer {
  readonly address: string;
  readonly connections: Set<Connection>;
}

interface Connection {
  /** The TCP socket; destroying it also closes the TLS socket on top of it. */
  readonly socket: Socket;
  readonly peer: Peer;
  /** Identifies the connection while its TLS handshake is under way. */
  readonly addresses: string;
  secure: boolean;
  /** Requests received and not yet answered. */
  requests: number;
  closed: boolean;
}

const addressesOf = (socket: Socket) => `${socket.remoteAddress}|${socket.remotePort}|${socket.localAddress}|${socket.localPort}`;

/** Refuses limits that contradict each other, naming the `twokey serve` options that set them. */
export function checkClientLimits(limits: ClientLimitOptions): void {
  const problems = [
    limits.maxConnectionsPerPeer > limits.maxConnections && '--max-connections-per-peer cannot exceed --max-connections',
  ].filter((problem) => typeof problem === 'string');
  if (problems.length > 0) throw new TwokeyError('ERR_USAGE', problems.join('; '));
}

export class ClientLimits {
  readonly #limits: ClientLimitOptions;
  readonly #onShed: (reason: ShedReason) => void;
  readonly #peers = new Map<string, Peer>();
  /** Connections whose TLS handshake is under way, by their addresses (the TLS socket is another object). */
  readonly #handshaking = new Map<string, Connection>();
  readonly #bySocket = new WeakMap<Socket, Connection>();
  #open = 0;

  constructor(limits: ClientLimitOptions, onShed: (reason: ShedReason) => void = () => {}) {
    checkClientLimits(limits);
    this.#limits = limits;
    this.#onShed = onShed;
  }

  /**
   * Counts the server's connections and requests; over TLS a connection is idle once its handshake
   * is done. (Node's own maxConnections refuses every new connection at the limit, which is what
   * lets idle clients lock kube-apiserver out.)
   */
  guard(app: FastifyInstance, tls: boolean): void {
    const server = app.server as Server;
    server.on('connection', (socket: Socket) => this.#accept(socket, tls));
    if (tls) server.on('secureConnection', (socket: Socket) => this.#secured(socket));
    app.addHook('onRequest', this.#onRequest);
  }

  /** A request holds its connection until it is answered. */
  readonly #onRequest = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    const connection = this.#bySocket.get(request.raw.socket);
    if (connection !== undefined && !connection.closed) {
      connection.requests += 1;
      // `on`, not `once`: it fires once per request, and `once` costs a wrapper per request.
      reply.raw.on('close', () => {
        connection.requests -= 1;
      });
    }
    done();
  };

  #accept(socket: Socket, tls: boolean): void {
    const address = socket.remoteAddress;
    if (address === undefined) {
      socket.destroy();
      return;
    }
    let peer = this.#peers.get(address);
    if (peer === undefined) {
      peer = { address, connections: new Set() };
      this.#peers.set(address, peer);
    }
    const connection: Connection = {
      socket,
      peer,
      addresses: tls ? addressesOf(socket) : '',
      secure: !tls,
      requests: 0,
      closed: false,
    };
    peer.connections.add(connection);
    this.#open += 1;
    if (tls) this.#handshaking.set(connection.addresses, connection);
    else this.#bySocket.set(socket, connection);
    socket.once('close', () => this.#forget(connection));

    if (peer.connections.size > this.#limits.maxConnectionsPerPeer) {
      const victim = this.#idleOf(peer, connection);
      this.#shed(victim ?? connection, 'peer-connections');
      if (!victim) return;
    }
    if (this.#open > this.#limits.maxConnections) this.#shed(this.#connectionVictim(connection) ?? connection, 'connections');
  }

  #secured(socket: Socket): void {
    const addresses = addressesOf(socket);
    const connection = this.#handshaking.get(addresses);
    if (connection === undefined) return;
    this.#handshaking.delete(addresses);
    connection.secure = true;
    this.#bySocket.set(socket, connection);
  }

  /** A peer's oldest connection that has not finished its TLS handshake, else its oldest without a request. */
  #idleOf(peer: Peer, except: Connection): Connection | undefined {
    let idle: Connection | undefined;
    for (const connection of peer.connections) {
      if (connection === except) continue;
      if (!connection.secure) return connection;
      if (connection.requests === 0) idle ??= connection;
    }
    return idle;
  }

  /** For a new connection over the server's limit: an idle connection of the peer holding the most. */
  #connectionVictim(newcomer: Connection): Connection | undefined {
    const peers = [...this.#peers.values()].sort((a, b) => b.connections.size - a.connections.size);
    for (const peer of peers) {
      const idle = this.#idleOf(peer, newcomer);
      if (idle) return idle;
    }
    return undefined;
  }

  #shed(connection: Connection, reason: ShedReason): void {
    if (connection.closed) return;
    this.#forget(connection);
    this.#onShed(reason);
    connection.socket.destroy();
  }

  /** Stops counting a connection at once (its sockets close a moment later). */
  #forget(connection: Connection): void {
    if (connection.closed) return;
    connection.closed = true;
    const { peer } = connection;
    peer.connections.delete(connection);
    this.#open -= 1;
    if (!connection.secure) this.#handshaking.delete(connection.addresses);
    if (peer.connections.size === 0) this.#peers.delete(peer.address);
  }
}
