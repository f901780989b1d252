// The probe sender, in a worker thread of its own: setns() moves only the calling thread, so this thread
// enters the source's namespace and its event loop's sockets (TCP, UDP) and the raw ICMP socket are
// created there, while the daemon's main thread never leaves its namespace (see kernel/netns.ts). One
// worker serves every probe, one at a time, going back to the daemon's namespace after each.
import { parentPort, workerData } from 'node:worker_threads';
import fs from 'node:fs';
import net from 'node:net';
import dgram from 'node:dgram';
import koffi from 'koffi';
import ipaddr from 'ipaddr.js';

export interface ProbeRequest {
  /** the namespace to send from (undefined: the daemon's own) */
  netns?: string;
  proto: 'tcp' | 'udp' | 'icmp';
  /** source address to bind (undefined: the kernel's choice) */
  src?: string;
  dst: string;
  port?: number;
  /** source port (tcp/udp) or echo id (icmp): what the trace rule matches */
  sport: number;
  timeoutMs: number;
}

export interface ProbeResult {
  /** answered: SYN-ACK, a UDP reply or an echo reply; refused: RST or port unreachable; unreachable: no route / host unreachable */
  outcome: 'answered' | 'refused' | 'unreachable' | 'timeout' | 'error';
  code?: string;
  detail: string;
  from?: string;
}

const libc = koffi.load('libc.so.6');
const c_setns = libc.func('int setns(int fd, int nstype)');
const c_socket = libc.func('int socket(int domain, int type, int protocol)');
const c_close = libc.func('int close(int fd)');
const c_sendto = libc.func('long sendto(int fd, const uint8_t *buf, size_t len, int flags, const uint8_t *addr, uint32_t addrlen)');
const c_recv = libc.func('long recv(int fd, _Out_ uint8_t *buf, size_t len, int flags)');
const c_setsockopt = libc.func('int setsockopt(int fd, int level, int name, const uint8_t *val, uint32_t len)');
const c_bind = libc.func('int bind(int fd, const uint8_t *addr, uint32_t addrlen)');
const CLONE_NEWNET = 0x40000000;
const AF_INET = 2, AF_INET6 = 10, SOCK_RAW = 3, IPPROTO_ICMP = 1, IPPROTO_ICMPV6 = 58, SOL_SOCKET = 1, SO_RCVTIMEO = 20;
const home = fs.openSync('/proc/thread-self/ns/net', 'r');
/** [0] = the sequence number of a probe to stop early (a rule already dropped it): set by the tracer */
const stopFlag: Int32Array = (workerData as { stop?: Int32Array } | undefined)?.stop ?? new Int32Array(1);
let current = 0;
const stopped = () => Atomics.load(stopFlag, 0) === current;
const STOPPED: ProbeResult = { outcome: 'timeout', code: 'stopped', detail: 'no answer: a rule dropped the probe, so loom stopped waiting' };

/** sockaddr_in (16 bytes) or sockaddr_in6 (28 bytes) */
function sockaddr(ip: string): Buffer {
  if (net.isIP(ip) === 6) {
    const b = Buffer.alloc(28);
    b.writeUInt16LE(AF_INET6, 0);
    Buffer.from(ipaddr.parse(ip).toByteArray()).copy(b, 8);
    return b;
  }
  const b = Buffer.alloc(16);
  b.writeUInt16LE(AF_INET, 0);
  ip.split('.').forEach((o, i) => (b[4 + i] = Number(o)));
  return b;
}

function checksum(b: Buffer): number {
  let s = 0;
  for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
  if (b.length % 2) s += b[b.length - 1]! << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

/**
 * An echo request with our id on a raw socket (ICMP, or ICMPv6 whose checksum the kernel fills in);
 * blocking receive (this thread has nothing else to do). An ICMPv6 raw socket receives no IP header.
 */
function icmpProbe(r: ProbeRequest): ProbeResult {
  const v6 = net.isIP(r.dst) === 6;
  const fd = c_socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);
  if (fd < 0) return { outcome: 'error', detail: `raw ICMP socket: errno ${koffi.errno()}` };
  const alen = v6 ? 28 : 16;
  try {
    if (r.src && c_bind(fd, sockaddr(r.src), alen) < 0) return { outcome: 'error', code: 'EADDRNOTAVAIL', detail: `cannot send from ${r.src} (errno ${koffi.errno()})` };
    const pkt = Buffer.alloc(16);
    pkt[0] = v6 ? 128 : 8;
    pkt.writeUInt16BE(r.sport, 4);
    pkt.writeUInt16BE(1, 6);
    pkt.write('loomtrace', 8, 'latin1');
    if (!v6) pkt.writeUInt16BE(checksum(pkt), 2);
    const end = Date.now() + r.timeoutMs;
    if (c_sendto(fd, pkt, pkt.length, 0, sockaddr(r.dst), alen) < 0) {
      const e = koffi.errno();
      return { outcome: e === 101 || e === 113 ? 'unreachable' : 'error', code: e === 101 ? 'ENETUNREACH' : e === 113 ? 'EHOSTUNREACH' : `errno ${e}`, detail: e === 101 ? 'no route to the destination (ENETUNREACH)' : `send failed (errno ${e})` };
    }
    const buf = Buffer.alloc(1500);
    for (;;) {
      const left = end - Date.now();
      if (left <= 0) return { outcome: 'timeout', detail: `no echo reply within ${r.timeoutMs} ms` };
      if (stopped()) return STOPPED;
      // waits in slices, so that a stop request is seen within 20 ms
      const slice = Math.min(left, 20);
      const tv = Buffer.alloc(16);
      tv.writeBigInt64LE(0n, 0);
      tv.writeBigInt64LE(BigInt(slice * 1000), 8);
      c_setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16);
      const n = Number(c_recv(fd, buf, buf.length, 0));
      if (n < 0) continue; // EAGAIN after the timeout: the loop ends on the clock
      if (v6) {
        const type = buf[0]!;
        if (type === 129 && n >= 8 && buf.readUInt16BE(4) === r.sport) return { outcome: 'answered', detail: `echo reply from ${r.dst}`, from: r.dst };
        // destination unreachable (1) quoting our echo request: 8 + the IPv6 header (40) + its ICMPv6 header
        if (type === 1 && n >= 8 + 40 + 8 && buf[8 + 6] === IPPROTO_ICMPV6 && buf.readUInt16BE(8 + 40 + 4) === r.sport) {
          const from = ipaddr.fromByteArray([...buf.subarray(8 + 24, 8 + 40)]).toString();
          return { outcome: 'unreachable', code: `icmpv6 unreachable code ${buf[1]}`, detail: `destination unreachable (ICMPv6 code ${buf[1]}) for ${from}`, from };
        }
        continue;
      }
      const ihl = (buf[0]! & 0x0f) * 4;
      const from = `${buf[12]}.${buf[13]}.${buf[14]}.${buf[15]}`;
      const type = buf[ihl]!;
      if (type === 0 && buf.readUInt16BE(ihl + 4) === r.sport) return { outcome: 'answered', detail: `echo reply from ${from}`, from };
      if (type === 3 && n >= ihl + 8 + 28) {
        // destination unreachable quoting our echo request
        const inner = ihl + 8, iihl = (buf[inner]! & 0x0f) * 4;
        if (buf[inner + 9] === IPPROTO_ICMP && buf.readUInt16BE(inner + iihl + 4) === r.sport) {
          return { outcome: 'unreachable', code: `icmp unreachable code ${buf[ihl + 1]}`, detail: `destination unreachable (code ${buf[ihl + 1]}) from ${from}`, from };
        }
      }
    }
  } finally {
    c_close(fd);
  }
}

function tcpProbe(r: ProbeRequest): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const s = net.connect({ host: r.dst, port: r.port!, localPort: r.sport, ...(r.src ? { localAddress: r.src } : {}) });
    const t = setTimeout(() => { clearInterval(poll); s.destroy(); resolve({ outcome: 'timeout', detail: `no answer to the SYN within ${r.timeoutMs} ms` }); }, r.timeoutMs);
    const poll = setInterval(() => { if (stopped()) { clearTimeout(t); clearInterval(poll); s.destroy(); resolve(STOPPED); } }, 20);
    s.once('connect', () => { clearTimeout(t); clearInterval(poll); s.resetAndDestroy(); resolve({ outcome: 'answered', detail: `SYN-ACK from ${r.dst}:${r.port}: a server listens`, from: r.dst }); });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      clearInterval(poll);
      if (e.code === 'ECONNREFUSED') resolve({ outcome: 'refused', code: e.code, detail: `reset from ${r.dst}:${r.port}: nothing listens there`, from: r.dst });
      else if (e.code === 'ENETUNREACH' || e.code === 'EHOSTUNREACH') resolve({ outcome: 'unreachable', code: e.code, detail: e.code === 'ENETUNREACH' ? 'no route to the destination (ENETUNREACH)' : 'host unreachable (EHOSTUNREACH: no ARP answer or an ICMP error)' });
      else resolve({ outcome: 'error', code: e.code, detail: e.message });
    });
  });
}

function udpProbe(r: ProbeRequest): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const s = dgram.createSocket(net.isIP(r.dst) === 6 ? 'udp6' : 'udp4');
    const done = (x: ProbeResult) => { clearTimeout(t); clearInterval(poll); try { s.close(); } catch { /* closed */ } resolve(x); };
    const poll = setInterval(() => { if (stopped()) done(STOPPED); }, 20);
    const t = setTimeout(() => done({ outcome: 'timeout', detail: `no UDP answer within ${r.timeoutMs} ms (UDP servers need not answer)` }), r.timeoutMs);
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNREFUSED') done({ outcome: 'refused', code: e.code, detail: `port unreachable from ${r.dst}:${r.port}: nothing listens there`, from: r.dst });
      else if (e.code === 'ENETUNREACH' || e.code === 'EHOSTUNREACH') done({ outcome: 'unreachable', code: e.code, detail: `no route to the destination (${e.code})` });
      else done({ outcome: 'error', code: e.code, detail: e.message });
    });
    s.on('message', (_m, rinfo) => done({ outcome: 'answered', detail: `UDP answer from ${rinfo.address}:${rinfo.port}`, from: rinfo.address }));
    s.bind({ port: r.sport, ...(r.src ? { address: r.src } : {}) }, () => {
      s.connect(r.port!, r.dst, () => {
        s.send(Buffer.from('loom trace probe\n'), (e) => { if (e) s.emit('error', e); });
      });
    });
  });
}

async function probe(r: ProbeRequest): Promise<ProbeResult> {
  if (r.netns) {
    const fd = fs.openSync(r.netns, 'r');
    try {
      if (c_setns(fd, CLONE_NEWNET) !== 0) return { outcome: 'error', detail: `cannot enter ${r.netns} (errno ${koffi.errno()})` };
    } finally {
      fs.closeSync(fd);
    }
  }
  try {
    if (r.proto === 'icmp') return icmpProbe(r);
    return await (r.proto === 'tcp' ? tcpProbe(r) : udpProbe(r));
  } catch (e) {
    return { outcome: 'error', detail: (e as Error).message };
  } finally {
    if (r.netns) c_setns(home, CLONE_NEWNET);
  }
}

parentPort?.on('message', (m: { seq: number; req: ProbeRequest }) => {
  current = m.seq;
  void probe(m.req).then((res) => parentPort!.postMessage({ seq: m.seq, res }));
});
