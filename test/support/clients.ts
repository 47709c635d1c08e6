/**
 * Clients that hold what they can of a server: TCP connections that never start TLS, TLS
 * connections that send nothing, uploads that stall. Each comes from a loopback source address
 * of its own choosing (127.0.0.x), as pods at different addresses would.
 */
import { type Socket, connect as tcpConnect } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { SERVICE_NAME } from './files.ts';

export const MIB = 1024 * 1024;

const CHUNK = 256 * 1024;
const filler = Buffer.alloc(CHUNK, 0x20);

export interface Upload {
  /** The declared Content-Length; chunked when absent. */
  readonly declared?: number;
  /** Bytes of the body sent before stalling. */
  readonly sent: number;
  /** Where the request goes. */
  readonly path?: string;
}

/** Resolves when the socket is closed, at once when it already is. */
export function closed(socket: Socket): Promise<void> {
  return socket.closed ? Promise.resolve() : new Promise((resolve) => socket.once('close', () => resolve()));
}

export class Clients {
  readonly #sockets: Socket[] = [];
  readonly #port: number;
  readonly #ca: string;

  constructor(port: number, ca: string) {
    this.#port = port;
    this.#ca = ca;
  }

  /** TCP connections that never start TLS, opened in batches so the listen backlog keeps up. */
  async idle(source: string, count: number): Promise<Socket[]> {
    const opened: Socket[] = [];
    for (let started = 0; started < count; started += 50) {
      const batch = Array.from({ length: Math.min(50, count - started) }, () => this.#tcp(source));
      await Promise.all(batch.map((socket) => new Promise((resolve) => socket.once('connect', resolve).once('close', resolve))));
      opened.push(...batch);
    }
    return opened;
  }

  /** A connection whose TLS handshake is done; resolves with it, or with it closed when the server cut it. */
  async secure(source: string): Promise<TLSSocket> {
    const socket = this.#tls(source);
    await new Promise((resolve) => socket.once('secureConnect', resolve).once('close', resolve));
    return socket;
  }

  /**
   * Starts an upload, sends `sent` bytes of its body, and stalls. `started` settles once its
   * headers are sent (or the server cut it first); the server's answer is collected in `answer`.
   */
  upload(source: string, body: Upload): TLSSocket & { answer: string; started: Promise<void> } {
    const tls = this.#tls(source);
    const started = new Promise<void>((resolve) => tls.once('secureConnect', () => resolve()).once('close', () => resolve()));
    const socket = Object.assign(tls, { answer: '', started });
    socket.on('data', (chunk: Buffer) => {
      socket.answer += chunk.toString('latin1');
    });
    socket.prependOnceListener('secureConnect', async () => {
      const length = body.declared === undefined ? 'Transfer-Encoding: chunked' : `Content-Length: ${body.declared}`;
      socket.write(
        `POST ${body.path ?? '/validate?timeout=5s'} HTTP/1.1\r\nHost: ${SERVICE_NAME}\r\nContent-Type: application/json\r\n${length}\r\n\r\n`,
      );
      // As fast as the server reads, and no faster: the client's own work would slow the reviews timed beside it.
      for (let left = body.sent; left > 0 && !socket.destroyed; left -= CHUNK) {
        const piece = filler.subarray(0, Math.min(CHUNK, left));
        const written =
          body.declared === undefined
            ? socket.write(Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]))
            : socket.write(piece);
        if (!written) await new Promise((resolve) => socket.once('drain', resolve).once('close', resolve));
      }
    });
    return socket;
  }

  /** Sends a whole review body and resolves with the HTTP status of the answer (0 when the server cut the connection). */
  post(source: string, body: Buffer, path = '/validate?timeout=5s'): Promise<number> {
    const socket = this.#tls(source);
    let answer = '';
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
    });
    socket.once('secureConnect', () => {
      socket.write(
        `POST ${path} HTTP/1.1\r\nHost: ${SERVICE_NAME}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
      );
      socket.write(body);
    });
    return new Promise((resolve) => {
      const settle = () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0));
      socket.on('data', () => {
        if (/\r\n\r\n/.test(answer)) {
          settle();
          socket.destroy();
        }
      });
      socket.once('close', settle);
    });
  }

  /** Sends the rest of a stalled upload's body: `bytes` more (at most 256 KiB). */
  finish(socket: Socket, bytes: number): void {
    socket.write(filler.subarray(0, bytes));
  }

  destroyAll(): void {
    for (const socket of this.#sockets.splice(0)) socket.destroy();
  }

  #tls(source: string): TLSSocket {
    return this.#track(tlsConnect({ socket: this.#tcp(source), servername: SERVICE_NAME, ca: this.#ca }));
  }

  #tcp(source: string): Socket {
    return this.#track(tcpConnect({ host: '127.0.0.1', port: this.#port, localAddress: source }));
  }

  #track<T extends Socket>(socket: T): T {
    socket.on('error', () => {});
    this.#sockets.push(socket);
    return socket;
  }
}
