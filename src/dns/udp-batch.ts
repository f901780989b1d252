// The UDP hot path without Node's dgram: libuv tells when a socket is readable (koffi.node.poll, a uv_poll
// handle), then one recvmmsg() takes up to 64 queries, the answers are computed synchronously, and one
// sendmmsg() sends them all back. Node's dgram costs one JS callback, one send request object, an address
// lookup tick and two syscalls per packet; on this 2-core machine it tops out near 40k queries/s under
// dnsperf, the batched path at ~100k (constant answers) because the per-syscall cost dominates.
//
// All sockets share one arena of native memory (headers, addresses, packet slots): a batch is received,
// answered and sent within one synchronous callback on the main thread, so nothing else can touch the
// arena in between. Answers that need more time (forwarding) copy the query and the client's address out
// and are sent later with sendto().
import fs from 'node:fs';
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');
const c_recvmmsg = libc.func('int recvmmsg(int fd, uint64_t vec, unsigned int vlen, int flags, void *timeout)');
const c_sendmmsg = libc.func('int sendmmsg(int fd, uint64_t vec, unsigned int vlen, int flags)');
const c_sendto = libc.func('long sendto(int fd, const void *buf, unsigned long len, int flags, const void *addr, uint32_t alen)');

const MSG_DONTWAIT = 0x40;
const MSG_TRUNC = 0x20;

const N = 64; // messages per syscall
const PKT = 2048; // a query slot (a larger query is dropped: MSG_TRUNC)
const OUT = 4096; // an answer slot (the most a UDP client may ask us for, OUR_UDP_SIZE)
const ADDR = 28; // room for sockaddr_in6, though these sockets are AF_INET
// struct mmsghdr on x86_64/aarch64: msghdr (56 bytes) + msg_len (4) + padding = 64
const MMSG = 64;
const IOV = 16;

// layout
const oRecv = 0;
const oSend = oRecv + N * MMSG;
const oRIov = oSend + N * MMSG;
const oSIov = oRIov + N * IOV;
const oAddr = oSIov + N * IOV;
const oPkt = oAddr + N * 32;
const oOut = oPkt + N * PKT;
const SIZE = oOut + N * OUT;

interface Arena {
  buf: Buffer;
  recvVec: bigint;
  sendVec: bigint;
  /** address of each address slot, as the two 32-bit halves written into msg_name */
  addrLo: number[];
  addrHi: number[];
}

let arena: Arena | null = null;

function getArena(): Arena {
  if (arena) return arena;
  const mem = koffi.alloc('uint8_t', SIZE);
  const base = koffi.address(mem);
  const buf = Buffer.from(koffi.view(mem, SIZE));
  buf.fill(0);
  const addrLo: number[] = [], addrHi: number[] = [];
  for (let i = 0; i < N; i++) {
    const r = oRecv + i * MMSG, s = oSend + i * MMSG;
    const addr = base + BigInt(oAddr + i * 32);
    addrLo.push(Number(addr & 0xffffffffn));
    addrHi.push(Number(addr >> 32n));
    // receive: msg_name = address slot i, msg_iov = one iovec over packet slot i
    buf.writeBigUInt64LE(addr, r);
    buf.writeUInt32LE(ADDR, r + 8);
    buf.writeBigUInt64LE(base + BigInt(oRIov + i * IOV), r + 16);
    buf.writeBigUInt64LE(1n, r + 24);
    buf.writeBigUInt64LE(base + BigInt(oPkt + i * PKT), oRIov + i * IOV);
    buf.writeBigUInt64LE(BigInt(PKT), oRIov + i * IOV + 8);
    // send: msg_iov = one iovec over answer slot i; msg_name and lengths are set per batch
    buf.writeBigUInt64LE(base + BigInt(oSIov + i * IOV), s + 16);
    buf.writeBigUInt64LE(1n, s + 24);
    buf.writeBigUInt64LE(base + BigInt(oOut + i * OUT), oSIov + i * IOV);
  }
  arena = { buf, recvVec: base + BigInt(oRecv), sendVec: base + BigInt(oSend), addrLo, addrHi };
  return arena;
}

/** True when this koffi can drive a socket from libuv's loop (its poll API is young; else use dgram). */
export function batchUdpAvailable(): boolean {
  return typeof (koffi as unknown as { node?: { poll?: unknown } }).node?.poll === 'function';
}

/**
 * What to do with one datagram: an answer to send now, or null (nothing now: dropped, or answered later
 * through `later()`, which must then be called synchronously to capture the client's address).
 */
export type DatagramHandler = (msg: Buffer, later: () => Peer) => Buffer | null;

/** A client address captured for a later answer. */
export interface Peer {
  send(answer: Buffer): void;
}

export class BatchUdpSocket {
  readonly fd: number;
  private handle: { close(): void; stop(): void } | null;
  private readonly onError: (e: Error) => void;
  private closed = false;

  /** Takes ownership of `fd` (a non-blocking AF_INET datagram socket). */
  constructor(fd: number, handler: DatagramHandler, onError: (e: Error) => void) {
    this.fd = fd;
    this.onError = onError;
    const a = getArena();
    const poll = (koffi as unknown as { node: { poll(fd: number, o: object, cb: () => void): { close(): void; stop(): void } } }).node.poll;
    this.handle = poll(fd, { readable: true }, () => {
      try {
        this.drain(a, handler);
      } catch (e) {
        this.onError(e as Error);
      }
    });
  }

  private drain(a: Arena, handler: DatagramHandler): void {
    const B = a.buf;
    // Level-triggered: what is left after a few rounds comes back on the next loop iteration, so one
    // busy container cannot starve the others.
    for (let round = 0; round < 4 && !this.closed; round++) {
      for (let i = 0; i < N; i++) B.writeUInt32LE(ADDR, oRecv + i * MMSG + 8);
      const k = c_recvmmsg(this.fd, a.recvVec, N, MSG_DONTWAIT, null) as number;
      if (k <= 0) return; // EAGAIN (or an error the next poll reports again)
      let m = 0;
      for (let i = 0; i < k; i++) {
        const r = oRecv + i * MMSG;
        if (B.readInt32LE(r + 48) & MSG_TRUNC) continue;
        const len = B.readUInt32LE(r + 56);
        const p = oPkt + i * PKT;
        const slot = i;
        const answer = handler(B.subarray(p, p + len), () => this.peer(slot, B.readUInt32LE(r + 8)));
        if (answer === null || answer.length > OUT) continue;
        const s = oSend + m * MMSG;
        B.writeUInt32LE(a.addrLo[i], s);
        B.writeUInt32LE(a.addrHi[i], s + 4);
        B.writeUInt32LE(B.readUInt32LE(r + 8), s + 8); // msg_namelen as received
        B.writeUInt32LE(answer.length, oSIov + m * IOV + 8); // iov_len (upper half stays 0)
        answer.copy(B, oOut + m * OUT);
        m++;
      }
      if (m > 0) c_sendmmsg(this.fd, a.sendVec, m, MSG_DONTWAIT);
      if (k < N) return;
    }
  }

  private peer(slot: number, namelen: number): Peer {
    const addr = Buffer.from(arena!.buf.subarray(oAddr + slot * 32, oAddr + slot * 32 + namelen));
    return {
      send: (answer: Buffer) => {
        if (!this.closed) c_sendto(this.fd, answer, answer.length, MSG_DONTWAIT, addr, addr.length);
      },
    };
  }

  /** Stops polling and closes the socket. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const h = this.handle;
    this.handle = null;
    try { h?.stop(); h?.close(); } finally { fs.closeSync(this.fd); }
  }
}
