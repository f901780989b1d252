// Sockets opened inside another network namespace. The main thread enters the namespace (withNetns), makes
// the sockets with plain libc calls (koffi) and comes back; a socket belongs for its whole life to the
// namespace it was created in, so Node can then drive it from the daemon's namespace like any other
// (dgram.bind({ fd }), net.Server.listen({ fd })). No helper process per container.
import fs from 'node:fs';
import koffi from 'koffi';
import { withNetns, errnoError } from '../kernel/netns.ts';

const libc = koffi.load('libc.so.6');
const c_socket = libc.func('int socket(int domain, int type, int protocol)');
const c_setsockopt = libc.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)');
const c_bind = libc.func('int bind(int fd, const void *addr, uint32_t len)');
const c_listen = libc.func('int listen(int fd, int backlog)');

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
// Not inherited by anything the daemon spawns (runc): a leaked copy would keep 127.0.0.11:53 bound in the
// container after the daemon is gone, and a restarted daemon could not bind it again.
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SOL_IP = 0;
// Bind even while lo is still down (127.0.0.0/8 only exists on an up lo): attach and "lo up" may come in
// either order.
const IP_FREEBIND = 15;

function sockaddrIn(ip: string, port: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16LE(AF_INET, 0);
  b.writeUInt16BE(port, 2);
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((x) => !(x >= 0 && x <= 255))) throw new Error(`not an IPv4 address: ${ip}`);
  b.set(parts, 4);
  return b;
}

const one = Buffer.alloc(4);
one.writeInt32LE(1, 0);

function makeSocket(type: number, ip: string, port: number, what: string): number {
  const fd = c_socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) throw errnoError(`${what}: socket`, koffi.errno());
  try {
    if (type === SOCK_STREAM && c_setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4) !== 0) throw errnoError(`${what}: SO_REUSEADDR`, koffi.errno());
    if (c_setsockopt(fd, SOL_IP, IP_FREEBIND, one, 4) !== 0) throw errnoError(`${what}: IP_FREEBIND`, koffi.errno());
    if (c_bind(fd, sockaddrIn(ip, port), 16) !== 0) throw errnoError(`${what}: bind ${ip}:${port}`, koffi.errno());
    if (type === SOCK_STREAM && c_listen(fd, 128) !== 0) throw errnoError(`${what}: listen`, koffi.errno());
    return fd;
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/**
 * A UDP socket and a listening TCP socket bound to ip:port inside the namespace at `netnsPath`, as raw
 * file descriptors (non-blocking, close-on-exec) for Node to wrap. UDP is bound without SO_REUSEADDR, so a
 * second server on the same address fails with EADDRINUSE instead of silently sharing it.
 */
export function openDnsSockets(netnsPath: string, ip: string, port: number): { udp: number; tcp: number } {
  return withNetns(netnsPath, () => {
    const udp = makeSocket(SOCK_DGRAM, ip, port, `dns udp in ${netnsPath}`);
    try {
      const tcp = makeSocket(SOCK_STREAM, ip, port, `dns tcp in ${netnsPath}`);
      return { udp, tcp };
    } catch (e) {
      fs.closeSync(udp);
      throw e;
    }
  });
}
