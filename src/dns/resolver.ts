// Docker's embedded DNS server (libnetwork resolver.go), per container: 127.0.0.11:53 over UDP and TCP
// inside the container's network namespace, answering container names, aliases and short ids on the
// networks the container is attached to, and forwarding everything else to its upstream resolvers from
// the daemon's own namespace.
//
// The sockets exist only inside container namespaces (opened there through setns, then driven by Node
// from the daemon's namespace), so the resolver is reachable from nowhere else: no open resolver, and the
// socket a query arrives on tells which container asks.
//
// Behaviour, as Docker's:
// - A/AAAA for our names with TTL 600, several containers behind one alias → all their addresses in a
//   shuffled order; the name is ours but has no address of the family → NOERROR without answers (NODATA).
// - PTR for container addresses (in-addr.arpa and ip6.arpa), answered with the owner's name.
// - Everything else is forwarded: UDP queries over UDP (a truncated upstream answer is passed on with TC,
//   the client then retries over TCP), TCP queries over TCP. No upstreams (a container only on internal
//   networks), upstreams that fail, or no answer within forwardTimeoutMs → SERVFAIL, as Docker answers
//   when it cannot (or may not) forward.
// - Our answers over UDP are cut to 512 bytes or the client's EDNS size, whole records dropped, TC set.
// One deliberate difference: a query of another type (MX, TXT, HTTPS, ...) for one of our names gets
// NODATA instead of being forwarded (Docker does that for MX only): an upstream's NXDOMAIN for such a
// query would say the name does not exist at all, and it would leak container names to the upstream.
import dgram from 'node:dgram';
import net from 'node:net';
import fs from 'node:fs';
import { once } from 'node:events';
import {
  parseQuery, FormatError, headerOnlyResponse, emptyResponse, addressResponse, ptrResponse, reverseNameToIp,
  truncateForwarded, type Query,
  TYPE_A, TYPE_AAAA, TYPE_PTR, TYPE_ANY, CLASS_IN,
  RCODE_FORMERR, RCODE_NOTIMP, RCODE_SERVFAIL, RCODE_BADVERS, RCODE_NOERROR,
} from './wire.ts';
import { forwardUdp, forwardTcp, parseUpstream, type Upstream } from './forward.ts';
import { openDnsSockets } from './netns-socket.ts';
import { BatchUdpSocket, batchUdpAvailable } from './udp-batch.ts';

export interface DnsAnswerSource {
  /**
   * Addresses for `name` (lower-case, no trailing dot) as seen by container `asker`. null = not a name of
   * ours → forward; [] = ours, but no address of that family → NODATA.
   */
  lookup(asker: string, name: string, family: 4 | 6): string[] | null;
  /** PTR: the name of the container owning `ip` on a network the asker shares, or null (→ forward). */
  reverse(asker: string, ip: string): string | null;
  /** Upstream servers (`ip` or `ip:port`, `[v6]:port`); [] = no forwarding (internal networks) → SERVFAIL. */
  upstreams(asker: string): string[];
}

export interface DnsLog {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

export interface EmbeddedDnsOptions {
  /** Total time for an upstream answer before SERVFAIL (default 2000 ms). */
  forwardTimeoutMs?: number;
  /** Where to listen inside each namespace (default 127.0.0.11:53; tests may change it). */
  address?: string;
  port?: number;
  /** Forwarded queries in flight at once, all containers together; beyond → SERVFAIL (default 1024). */
  maxForwards?: number;
  /** The same for one container (default 256), so one busy container cannot starve the others. */
  maxForwardsPerContainer?: number;
  /** TCP connections per container (default 64) and their idle timeout (default 10 s). */
  maxTcpConnections?: number;
  tcpIdleMs?: number;
  /**
   * UDP through recvmmsg/sendmmsg batches driven by libuv's poll (default, when koffi offers it), or
   * through Node's dgram (one syscall and callback per packet, ~40% slower).
   */
  udpBatch?: boolean;
}

export type Transport = 'udp' | 'tcp';

interface Attachment {
  id: string;
  netnsPath: string;
  /** dev:ino of the namespace, to tell a recreated namespace at the same path */
  nsKey: string;
  udp: { close(): void };
  tcp: net.Server;
  conns: Set<net.Socket>;
  closed: boolean;
}

function nsKeyOf(p: string): string {
  const st = fs.statSync(p);
  return `${st.dev}:${st.ino}`;
}

export class EmbeddedDns {
  readonly address: string;
  readonly port: number;
  private readonly source: DnsAnswerSource;
  private readonly log: DnsLog;
  private readonly forwardTimeoutMs: number;
  private readonly maxForwards: number;
  private readonly maxForwardsEach: number;
  /** forwarded queries in flight per asker */
  private readonly forwarding = new Map<string, number>();
  private readonly maxTcp: number;
  private readonly tcpIdleMs: number;
  private readonly udpBatch: boolean;
  private readonly atts = new Map<string, Attachment>();
  /** per-container chain of attach/detach, so concurrent calls for one container run in order */
  private readonly ops = new Map<string, Promise<unknown>>();
  private forwards = 0;
  private lastWarn = 0;
  private closing = false;

  constructor(source: DnsAnswerSource, log: DnsLog, opts: EmbeddedDnsOptions = {}) {
    this.source = source;
    this.log = log;
    this.forwardTimeoutMs = opts.forwardTimeoutMs ?? 2000;
    this.address = opts.address ?? '127.0.0.11';
    this.port = opts.port ?? 53;
    this.maxForwards = opts.maxForwards ?? 1024;
    this.maxForwardsEach = opts.maxForwardsPerContainer ?? 256;
    this.maxTcp = opts.maxTcpConnections ?? 64;
    this.tcpIdleMs = opts.tcpIdleMs ?? 10_000;
    this.udpBatch = (opts.udpBatch ?? true) && batchUdpAvailable();
  }

  // ------------------------------------------------------------------ answering

  /**
   * The whole answer to one query from container `asker`: null when the packet is to be dropped (a
   * response, or too short to hold a header). Over 'udp' the answer respects the client's size limit.
   */
  async handleQuery(asker: string, buf: Buffer, transport: Transport): Promise<Buffer | null> {
    const tcp = transport === 'tcp';
    const r = this.answer(asker, buf, tcp);
    if (r === null || !isQuery(r)) return r;
    return this.forward(asker, buf, r, tcp);
  }

  /**
   * The synchronous part: our own answer, null (drop), or the parsed query when it has to be forwarded.
   * Never throws.
   */
  answer(asker: string, buf: Buffer, tcp: boolean): Buffer | Query | null {
    let q: Query | null;
    try {
      q = parseQuery(buf);
    } catch (e) {
      if (e instanceof FormatError) return headerOnlyResponse(buf, RCODE_FORMERR);
      return null;
    }
    if (q === null) return null;
    try {
      if (((q.flags >> 11) & 0x0f) !== 0) return emptyResponse(buf, q, RCODE_NOTIMP); // only QUERY
      if (q.edns && q.ednsVersion !== 0) return emptyResponse(buf, q, RCODE_BADVERS);
      const name = q.name;
      if (name === null || q.qclass !== CLASS_IN) return q;
      const limit = tcp ? 65535 : q.udpSize;
      const src = this.source;
      switch (q.qtype) {
        case TYPE_A: {
          const ips = src.lookup(asker, name, 4);
          return ips === null ? q : addressResponse(buf, q, shuffled(ips), NONE, limit);
        }
        case TYPE_AAAA: {
          const ips = src.lookup(asker, name, 6);
          return ips === null ? q : addressResponse(buf, q, NONE, shuffled(ips), limit);
        }
        case TYPE_PTR: {
          const ip = reverseNameToIp(name);
          const target = ip === null ? null : src.reverse(asker, ip);
          return target === null ? q : ptrResponse(buf, q, target, limit);
        }
        case TYPE_ANY: {
          const a = src.lookup(asker, name, 4), b = src.lookup(asker, name, 6);
          return a === null && b === null ? q : addressResponse(buf, q, shuffled(a ?? NONE), shuffled(b ?? NONE), limit);
        }
        default:
          if (src.lookup(asker, name, 4) === null && src.lookup(asker, name, 6) === null) return q;
          return emptyResponse(buf, q, RCODE_NOERROR);
      }
    } catch (e) {
      this.warnRare({ asker, err: (e as Error).message }, 'embedded DNS: answering failed');
      return emptyResponse(buf, q, RCODE_SERVFAIL);
    }
  }

  /** Forwards `q` (already parsed from `buf`) to the asker's upstreams; SERVFAIL when that fails. */
  async forward(asker: string, buf: Buffer, q: Query, tcp: boolean): Promise<Buffer> {
    let ups: Upstream[];
    try {
      ups = [];
      for (const s of this.source.upstreams(asker)) {
        const u = parseUpstream(s);
        if (u) ups.push(u);
      }
    } catch (e) {
      this.warnRare({ asker, err: (e as Error).message }, 'embedded DNS: upstreams unavailable');
      return emptyResponse(buf, q, RCODE_SERVFAIL);
    }
    if (ups.length === 0) return emptyResponse(buf, q, RCODE_SERVFAIL);
    const mine = this.forwarding.get(asker) ?? 0;
    if (this.forwards >= this.maxForwards || mine >= this.maxForwardsEach) {
      this.warnRare({ asker, inFlight: this.forwards, fromContainer: mine }, 'embedded DNS: too many forwarded queries in flight');
      return emptyResponse(buf, q, RCODE_SERVFAIL);
    }
    this.forwards++;
    this.forwarding.set(asker, mine + 1);
    let resp: Buffer | null;
    try {
      resp = tcp ? await forwardTcp(buf, q.qEnd, ups, this.forwardTimeoutMs) : await forwardUdp(buf, q.qEnd, ups, this.forwardTimeoutMs);
    } finally {
      this.forwards--;
      const left = (this.forwarding.get(asker) ?? 1) - 1;
      if (left > 0) this.forwarding.set(asker, left);
      else this.forwarding.delete(asker);
    }
    if (resp === null) {
      this.log.debug({ asker, name: q.name, qtype: q.qtype }, 'embedded DNS: no upstream answer');
      return emptyResponse(buf, q, RCODE_SERVFAIL);
    }
    if (!tcp && resp.length > q.udpSize) return truncateForwarded(buf, q, resp);
    return resp;
  }

  private warnRare(obj: object, msg: string): void {
    const now = Date.now();
    if (now - this.lastWarn < 10_000) return this.log.debug(obj, msg);
    this.lastWarn = now;
    this.log.warn(obj, msg);
  }

  // ------------------------------------------------------------------ sockets per container

  /**
   * Listens on address:port (udp+tcp) inside the namespace at `netnsPath`, answering for `containerId`.
   * Idempotent; attaching again with another namespace (or a new one at the same path) moves it there.
   */
  attach(containerId: string, netnsPath: string): Promise<void> {
    return this.serialize(containerId, async () => {
      if (this.closing) throw new Error('embedded DNS is closed');
      const key = nsKeyOf(netnsPath);
      const cur = this.atts.get(containerId);
      if (cur && !cur.closed) {
        if (cur.netnsPath === netnsPath && cur.nsKey === key) return;
        await this.shut(cur);
      }
      const att = await this.open(containerId, netnsPath, key);
      if (this.closing) {
        await this.shut(att);
        throw new Error('embedded DNS is closed');
      }
      this.atts.set(containerId, att);
      this.log.debug({ id: containerId, netns: netnsPath }, 'embedded DNS attached');
    });
  }

  /** Closes the container's sockets (and its TCP connections); fine when not attached. */
  detach(containerId: string): Promise<void> {
    return this.serialize(containerId, async () => {
      const cur = this.atts.get(containerId);
      if (!cur) return;
      this.atts.delete(containerId);
      await this.shut(cur);
      this.log.debug({ id: containerId }, 'embedded DNS detached');
    });
  }

  /** Detaches every container; later attach() calls fail. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.ops.values()]); // attaches under way finish (and close themselves)
    await Promise.all([...this.atts.keys()].map((id) => this.detach(id)));
  }

  /** Containers currently attached (for diagnostics and tests). */
  attached(): string[] {
    return [...this.atts.keys()];
  }

  private serialize<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.ops.get(id) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.ops.set(id, tail);
    void tail.then(() => { if (this.ops.get(id) === tail) this.ops.delete(id); });
    return run;
  }

  private async open(id: string, netnsPath: string, nsKey: string): Promise<Attachment> {
    const fds = openDnsSockets(netnsPath, this.address, this.port);
    const att: Attachment = { id, netnsPath, nsKey, udp: { close() {} }, tcp: net.createServer(), conns: new Set(), closed: false };
    // the UDP socket
    try {
      att.udp = this.udpBatch ? this.batchUdp(att, fds.udp) : this.dgramUdp(att, fds.udp);
    } catch (e) {
      for (const fd of [fds.udp, fds.tcp]) try { fs.closeSync(fd); } catch { /* closed */ }
      throw e;
    }
    // the TCP listener
    const tcp = att.tcp;
    tcp.on('connection', (c: net.Socket) => this.onConnection(att, c));
    tcp.maxConnections = this.maxTcp;
    try {
      tcp.listen({ fd: fds.tcp });
      await once(tcp, 'listening');
    } catch (e) {
      att.udp.close();
      if (tcp.listening) tcp.close();
      else try { fs.closeSync(fds.tcp); } catch { /* owned by the server */ }
      throw e;
    }
    tcp.on('error', (e) => this.log.warn({ id, err: e.message }, 'embedded DNS tcp error'));
    return att;
  }

  /** UDP through recvmmsg/sendmmsg: answers of a batch go out in one syscall. */
  private batchUdp(att: Attachment, fd: number): { close(): void } {
    return new BatchUdpSocket(fd, (msg, later) => {
      const r = this.answer(att.id, msg, false);
      if (r === null || !isQuery(r)) return r;
      const peer = later();
      const copy = Buffer.from(msg); // msg lives in the shared receive arena
      void this.forward(att.id, copy, r, false).then((resp) => {
        if (!att.closed) peer.send(resp);
      });
      return null;
    }, (e) => this.warnRare({ id: att.id, err: e.message }, 'embedded DNS udp error'));
  }

  /** UDP through Node's dgram (a packet, a callback and a send at a time). */
  private dgramUdp(att: Attachment, fd: number): { close(): void } {
    const udp = dgram.createSocket({ type: 'udp4' });
    udp.bind({ fd });
    udp.on('error', (e) => this.log.debug({ id: att.id, err: e.message }, 'embedded DNS udp error'));
    udp.on('message', (msg, rinfo) => {
      const r = this.answer(att.id, msg, false);
      if (r === null) return;
      if (!isQuery(r)) {
        udp.send(r, rinfo.port, rinfo.address);
        return;
      }
      void this.forward(att.id, msg, r, false).then((resp) => {
        if (!att.closed) udp.send(resp, rinfo.port, rinfo.address);
      });
    });
    return { close: () => { try { udp.close(); } catch { /* closed */ } } };
  }

  private onConnection(att: Attachment, c: net.Socket): void {
    if (att.closed) { c.destroy(); return; }
    att.conns.add(c);
    c.setNoDelay(true);
    c.setTimeout(this.tcpIdleMs, () => c.destroy());
    c.on('close', () => att.conns.delete(c));
    c.on('error', () => { /* reset by the client */ });
    let pending: Buffer | null = null;
    const reply = (r: Buffer) => {
      if (c.destroyed || !c.writable) return;
      const framed = Buffer.allocUnsafe(r.length + 2);
      framed.writeUInt16BE(r.length, 0);
      r.copy(framed, 2);
      c.write(framed);
    };
    c.on('data', (d: Buffer) => {
      let b = pending ? Buffer.concat([pending, d]) : d;
      while (b.length >= 2) {
        const n = (b[0] << 8) | b[1];
        if (b.length < n + 2) break;
        const msg = b.subarray(2, n + 2);
        b = b.subarray(n + 2);
        const r = this.answer(att.id, msg, true);
        if (r === null) { c.destroy(); return; } // not a query: this is no DNS client
        if (!isQuery(r)) reply(r);
        else void this.forward(att.id, msg, r, true).then(reply);
      }
      pending = b.length ? Buffer.from(b) : null;
    });
  }

  private async shut(att: Attachment): Promise<void> {
    if (att.closed) return;
    att.closed = true;
    for (const c of att.conns) c.destroy();
    att.conns.clear();
    att.udp.close();
    await new Promise<void>((resolve) => att.tcp.close(() => resolve()));
  }
}

const NONE: readonly string[] = [];

function isQuery(r: Buffer | Query): r is Query {
  return !(r instanceof Uint8Array);
}

/** A shuffled copy when there is more than one address (Docker shuffles for a crude load balancing). */
function shuffled(ips: readonly string[]): readonly string[] {
  if (ips.length < 2) return ips;
  const a = ips.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    const t = a[i]; a[i] = a[j]; a[j] = t;
  }
  return a;
}
