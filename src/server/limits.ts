/**
 * What clients may hold of the server: open connections and request bodies, per peer address and
 * in total, so that a client that opens connections or starts uploads and stalls cannot crowd out
 * kube-apiserver. At a limit the server sheds what costs a real review least before it refuses
 * anything. The rules and the defaults are stated in the README ("Limits", under "The server").
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Server, Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { TwokeyError } from '../errors.ts';

export const MIB = 1024 * 1024;

export interface ClientLimitOptions {
  /** Connections open at once. */
  readonly maxConnections: number;
  /** Connections open at once from one peer address. */
  readonly maxConnectionsPerPeer: number;
  /** Bytes of request bodies held at once, from the headers until the answer is made. */
  readonly bodyMemory: number;
  /** The same, for the bodies of one peer address. */
  readonly bodyMemoryPerPeer: number;
  /** Reviews held parsed at once, at their estimated size as JavaScript values, from parsing until the answer is made. */
  readonly parseMemory: number;
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
  bodyMemory: 64 * MIB,
  bodyMemoryPerPeer: 32 * MIB,
  parseMemory: 48 * MIB,
};

/** Bodies up to this size are not scanned: they are taken at the most a JSON text can grow. */
const SCANNED_FROM = 64 * 1024;
/** How many times its size a JSON text grows at most once parsed (an array of empty objects), measured. */
const MOST_GROWTH = 22;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * What a JSON body is expected to take once parsed: twice its bytes (strings are kept as UTF-16)
 * and 64 bytes for each object and array, which is what Node takes for them (measured, and the
 * README says so under "Limits"). Real reviews hold one object or array per 12 to 80 bytes and
 * grow about 2.5 times; a hostile one (`[{},{},...]`) grows 21 times, which this estimate sees.
 */
export function parsedSizeEstimate(body: Buffer): number {
  if (body.length < SCANNED_FROM) return body.length * MOST_GROWTH;
  let containers = 0;
  let inString = false;
  for (let i = 0; i < body.length; i += 1) {
    const byte = body[i];
    if (inString) {
      if (byte === BACKSLASH) i += 1;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) inString = true;
    else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) containers += 1;
  }
  return 2 * body.length + 64 * containers;
}

/** Which limit made the server close a connection, for the metric. */
export type ShedReason = 'connections' | 'peer-connections' | 'body-memory' | 'pipelined';

/** Requests received and not yet answered on one connection, at most; kube-apiserver sends one at a time. */
export const MAX_REQUESTS_PER_CONNECTION = 4;

interface Peer {
  readonly address: string;
  readonly connections: Set<Connection>;
  /** Bodies counted and still arriving, oldest first: what another peer's body may displace. */
  readonly arriving: Set<Body>;
  /** Bytes of bodies counted for this peer. */
  held: number;
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
  readonly bodies: Set<Body>;
  closed: boolean;
}

interface Body {
  readonly connection: Connection;
  readonly bytes: number;
  /** Counted in the budgets (until the answer is made). */
  held: boolean;
  arriving: boolean;
  /** Lets the request go on to have its body read; set while it waits for room. */
  proceed?: HookHandlerDoneFunction;
}

const addressesOf = (socket: Socket) => `${socket.remoteAddress}|${socket.remotePort}|${socket.localAddress}|${socket.localPort}`;

/** Refuses limits that contradict each other, naming the `twokey serve` options that set them. */
export function checkClientLimits(limits: ClientLimitOptions, bodyLimit: number): void {
  const problems = [
    limits.maxConnectionsPerPeer > limits.maxConnections && '--max-connections-per-peer cannot exceed --max-connections',
    limits.bodyMemoryPerPeer > limits.bodyMemory && '--body-memory-per-peer-mib cannot exceed --body-memory-mib',
    bodyLimit > limits.bodyMemoryPerPeer && '--body-limit-mib cannot exceed --body-memory-per-peer-mib (such a body could never be read)',
    bodyLimit * 2 > limits.parseMemory &&
      '--parse-memory-mib must be at least twice --body-limit-mib (a review of the largest size could never be judged)',
  ].filter((problem) => typeof problem === 'string');
  if (problems.length > 0) throw new TwokeyError('ERR_USAGE', problems.join('; '));
}

export class ClientLimits {
  readonly #limits: ClientLimitOptions;
  readonly #bodyLimit: number;
  readonly #onShed: (reason: ShedReason) => void;
  readonly #peers = new Map<string, Peer>();
  /** Connections whose TLS handshake is under way, by their addresses (the TLS socket is another object). */
  readonly #handshaking = new Map<string, Connection>();
  readonly #bySocket = new WeakMap<Socket, Connection>();
  /** Requests waiting for room for their bodies, oldest first. */
  readonly #waiting = new Set<Body>();
  /** The parse budget each request holds, by its request. */
  readonly #parsed = new Map<IncomingMessage, number>();
  /** Parsed bodies waiting for room, oldest first. */
  readonly #parseWaiting = new Map<IncomingMessage, { readonly estimate: number; readonly resolve: (admitted: boolean) => void }>();
  #open = 0;
  #held = 0;
  #parseHeld = 0;
  #admitting = false;

  constructor(limits: ClientLimitOptions, bodyLimit: number, onShed: (reason: ShedReason) => void = () => {}) {
    checkClientLimits(limits, bodyLimit);
    this.#limits = limits;
    this.#bodyLimit = bodyLimit;
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
    // Once the answer is made, the review's body and parsed values are garbage: their budgets are
    // given back then, not when the client has read the answer, which a client may never do.
    app.addHook('onSend', (request, _reply, payload, done) => {
      this.#answered(request.raw);
      done(null, payload);
    });
  }

  /** The body counted for each request that has one, until its answer is made. */
  readonly #bodyOf = new WeakMap<IncomingMessage, Body>();

  /** Gives a request's parse budget and body bytes back; again is nothing. */
  #answered(raw: IncomingMessage): void {
    this.#releaseParse(raw);
    const body = this.#bodyOf.get(raw);
    if (body === undefined) return;
    this.#bodyOf.delete(raw);
    this.#waiting.delete(body);
    this.#release(body);
    this.#admitWaiting();
  }

  /** A request holds its connection until answered, and waits for room for its body before it is read. */
  readonly #onRequest = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    const connection = this.#bySocket.get(request.raw.socket);
    if (connection === undefined || connection.closed) {
      reply.raw.on('close', () => this.#releaseParse(request.raw));
      done();
      return;
    }
    // kube-apiserver sends one request at a time on a connection; Node starts every pipelined
    // request it has read, so a client that pipelines without reading queues work without bound.
    if (connection.requests >= MAX_REQUESTS_PER_CONNECTION) {
      this.#onShed('pipelined');
      connection.socket.destroy();
      return;
    }
    connection.requests += 1;
    const bytes = this.#bodyBytes(request.headers);
    const body: Body | undefined = bytes > 0 ? { connection, bytes, held: false, arriving: true } : undefined;
    if (body) this.#bodyOf.set(request.raw, body);
    // `on`, not `once`: each fires once per request, and `once` costs a wrapper per request.
    reply.raw.on('close', () => {
      connection.requests -= 1;
      this.#answered(request.raw);
    });
    if (!body) {
      done();
      return;
    }
    connection.bodies.add(body);
    request.raw.on('end', () => {
      body.arriving = false;
      connection.peer.arriving.delete(body);
    });
    if (this.#take(body)) done();
    else {
      body.proceed = done;
      this.#waiting.add(body);
    }
  };

  /**
   * Waits until a body read whole may be parsed: its estimated parsed size must fit what the
   * reviews being judged leave of the parse budget. False when it could never fit: the review
   * would take more memory than the server may give all reviews. Held until the answer is made.
   */
  admitParse(raw: IncomingMessage, estimate: number): Promise<boolean> {
    if (estimate > this.#limits.parseMemory) return Promise.resolve(false);
    if (this.#parseHeld + estimate <= this.#limits.parseMemory) {
      this.#holdParse(raw, estimate);
      return Promise.resolve(true);
    }
    return new Promise((resolve) => this.#parseWaiting.set(raw, { estimate, resolve }));
  }

  #holdParse(raw: IncomingMessage, estimate: number): void {
    this.#parsed.set(raw, estimate);
    this.#parseHeld += estimate;
  }

  #releaseParse(raw: IncomingMessage): void {
    this.#parseWaiting.get(raw)?.resolve(false);
    this.#parseWaiting.delete(raw);
    const estimate = this.#parsed.get(raw);
    if (estimate === undefined) return;
    this.#parsed.delete(raw);
    this.#parseHeld -= estimate;
    // Oldest first, and any that fits: a small review never waits behind a large one that does not.
    for (const [waiting, { estimate: wanted, resolve }] of this.#parseWaiting) {
      if (this.#parseHeld + wanted > this.#limits.parseMemory) continue;
      this.#parseWaiting.delete(waiting);
      this.#holdParse(waiting, wanted);
      resolve(true);
    }
  }

  /** What a body will hold: its declared length, or the whole limit when it is sent in chunks. */
  #bodyBytes(headers: IncomingHttpHeaders): number {
    const declared = headers['content-length'];
    if (declared !== undefined) {
      const length = Number(declared);
      // A larger body is refused from its Content-Length, before it is read.
      return length > 0 && length <= this.#bodyLimit ? length : 0;
    }
    return headers['transfer-encoding'] === undefined ? 0 : this.#bodyLimit;
  }

  #accept(socket: Socket, tls: boolean): void {
    const address = socket.remoteAddress;
    if (address === undefined) {
      socket.destroy();
      return;
    }
    let peer = this.#peers.get(address);
    if (peer === undefined) {
      peer = { address, connections: new Set(), arriving: new Set(), held: 0 };
      this.#peers.set(address, peer);
    }
    const connection: Connection = {
      socket,
      peer,
      addresses: tls ? addressesOf(socket) : '',
      secure: !tls,
      requests: 0,
      bodies: new Set(),
      closed: false,
    };
    peer.connections.add(connection);
    this.#open += 1;
    if (tls) this.#handshaking.set(connection.addresses, connection);
    else this.#bySocket.set(socket, connection);
    socket.once('close', () => {
      this.#forget(connection);
      this.#admitWaiting();
    });

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

  /**
   * For a new connection over the server's limit: an idle connection of the peer holding the most,
   * else a connection whose request body is still arriving, of a peer holding more connections
   * than the newcomer's.
   */
  #connectionVictim(newcomer: Connection): Connection | undefined {
    const peers = [...this.#peers.values()].sort((a, b) => b.connections.size - a.connections.size);
    for (const peer of peers) {
      const idle = this.#idleOf(peer, newcomer);
      if (idle) return idle;
    }
    for (const peer of peers) {
      if (peer.connections.size <= newcomer.peer.connections.size) break;
      for (const connection of peer.connections) for (const body of connection.bodies) if (body.arriving) return connection;
    }
    return undefined;
  }

  /**
   * Counts a body if there is room. A peer at its own limit waits for its own bodies to be
   * answered. When the server is at its limit, unfinished bodies of peers holding more than this
   * peer would are displaced, the largest holder's oldest first; failing that, the body waits.
   */
  #take(body: Body): boolean {
    const { peer } = body.connection;
    const wanted = peer.held + body.bytes;
    if (wanted > this.#limits.bodyMemoryPerPeer) return false;
    while (this.#held + body.bytes > this.#limits.bodyMemory) {
      let largest: Peer | undefined;
      for (const other of this.#peers.values())
        if (other.held > wanted && other.arriving.size > 0 && (largest === undefined || other.held > largest.held)) largest = other;
      const [oldest] = largest?.arriving ?? [];
      if (oldest === undefined) return false;
      this.#shed(oldest.connection, 'body-memory');
    }
    body.held = true;
    peer.held += body.bytes;
    this.#held += body.bytes;
    if (body.arriving) peer.arriving.add(body);
    return true;
  }

  #release(body: Body): void {
    const { connection } = body;
    connection.bodies.delete(body);
    connection.peer.arriving.delete(body);
    if (!body.held) return;
    body.held = false;
    connection.peer.held -= body.bytes;
    this.#held -= body.bytes;
  }

  /** Lets waiting requests read their bodies, oldest first, as far as there is room. */
  #admitWaiting(): void {
    if (this.#admitting || this.#waiting.size === 0) return;
    this.#admitting = true;
    try {
      this.#admitEach();
    } finally {
      this.#admitting = false;
    }
  }

  #admitEach(): void {
    for (const body of this.#waiting) {
      if (body.connection.closed) {
        this.#waiting.delete(body);
        continue;
      }
      if (!this.#take(body)) continue;
      this.#waiting.delete(body);
      const proceed = body.proceed;
      body.proceed = undefined;
      proceed?.();
    }
  }

  #shed(connection: Connection, reason: ShedReason): void {
    if (connection.closed) return;
    this.#forget(connection);
    this.#onShed(reason);
    connection.socket.destroy();
  }

  /** Stops counting a connection and what it holds, at once (its sockets close a moment later). */
  #forget(connection: Connection): void {
    if (connection.closed) return;
    connection.closed = true;
    for (const body of connection.bodies) {
      this.#waiting.delete(body);
      this.#release(body);
    }
    const { peer } = connection;
    peer.connections.delete(connection);
    this.#open -= 1;
    if (!connection.secure) this.#handshaking.delete(connection.addresses);
    if (peer.connections.size === 0) this.#peers.delete(peer.address);
  }
}
