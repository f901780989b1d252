// `outside:IP` as a trace source: the probe must really come in over the uplink, so it is sent from the
// namespace at the far end of that uplink. The uplink is the interface of the host's route to IP; when it
// is a veth, its IFLA_LINK_NETNSID names the peer's namespace by the id the host gave it, and RTM_GETNSID
// with a namespace file's fd tells which file of `ip netns` has that id. A physical uplink has no such
// namespace: the outside is another machine, and loom says so instead of faking the probe.
import fs from 'node:fs';
import net from 'node:net';
import { RawNetlinkSocket } from 'netlink';
import { Rtnl } from '../kernel/rtnl.ts';
import { attrMap as attrs } from '../kernel/netmsg.ts';
import { invalidParameter } from '../util/errors.ts';
import { routeFor } from './routes.ts';

const NETLINK_ROUTE = 0;
const RTM_NEWLINK = 16, RTM_GETLINK = 18, RTM_NEWNSID = 88, RTM_GETNSID = 90;
const NLM_F_REQUEST = 1, NLMSG_ERROR = 2;
const IFLA_IFNAME = 3, IFLA_LINK_NETNSID = 37;
const NETNSA_NSID = 1, NETNSA_FD = 3;

/** One request, one answer (or the kernel's error) on a route socket of the daemon's namespace. */
class RouteSocket {
  private readonly sock = new RawNetlinkSocket(NETLINK_ROUTE, {} as never);
  private seq = 1;
  private readonly pending = new Map<number, (b: Buffer) => void>();

  constructor() {
    this.sock.on('message', (msg: Buffer) => {
      let off = 0;
      while (off + 16 <= msg.length) {
        const len = msg.readUInt32LE(off);
        if (len < 16 || off + len > msg.length) break;
        const seq = msg.readUInt32LE(off + 8);
        this.pending.get(seq)?.(msg.subarray(off, off + len));
        this.pending.delete(seq);
        off += (len + 3) & ~3;
      }
    });
  }

  request(type: number, body: Buffer, attrList: [number, Buffer][]): Promise<Buffer> {
    const seq = this.seq++;
    const parts = attrList.map(([t, v]) => {
      const a = Buffer.alloc((4 + v.length + 3) & ~3);
      a.writeUInt16LE(4 + v.length, 0);
      a.writeUInt16LE(t, 2);
      v.copy(a, 4);
      return a;
    });
    const msg = Buffer.concat([Buffer.alloc(16), body, ...parts]);
    msg.writeUInt32LE(msg.length, 0);
    msg.writeUInt16LE(type, 4);
    msg.writeUInt16LE(NLM_F_REQUEST, 6);
    msg.writeUInt32LE(seq, 8);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.pending.delete(seq); reject(new Error('netlink: no answer')); }, 2000);
      this.pending.set(seq, (b) => { clearTimeout(t); resolve(b); });
      this.sock.send(msg, {}, (e) => { if (e) { clearTimeout(t); this.pending.delete(seq); reject(e); } });
    });
  }

  close(): void {
    this.sock.close();
  }
}

/** The `ip netns` file (among `candidates`) at the far end of the host's uplink towards `ip`. */
export async function findPeerNamespace(ip: string, candidates: string[]): Promise<string> {
  const rt = Rtnl.open();
  let oif: number | undefined, ifname = '';
  try {
    const route = routeFor(await rt.listRoutes(net.isIP(ip) === 6 ? 6 : 4), ip);
    oif = route?.index;
    if (oif) ifname = (await rt.getLink(oif))?.name ?? String(oif);
  } finally {
    rt.close();
  }
  if (!oif) throw invalidParameter(`outside:${ip}: the host has no route to ${ip}`);
  const s = new RouteSocket();
  try {
    const ifi = Buffer.alloc(16);
    ifi.writeInt32LE(oif, 4);
    const link = await s.request(RTM_GETLINK, ifi, []);
    if (link.readUInt16LE(4) !== RTM_NEWLINK) throw invalidParameter(`outside:${ip}: cannot read uplink ${ifname}`);
    const la = attrs(link, 32);
    const nsid = la.get(IFLA_LINK_NETNSID)?.readInt32LE(0);
    if (la.has(IFLA_IFNAME)) ifname = la.get(IFLA_IFNAME)!.toString('latin1').replace(/\0.*$/s, '');
    if (nsid === undefined || nsid < 0) {
      throw invalidParameter(`outside:${ip}: ${ip} is reached through ${ifname}, whose far end is not a namespace of this machine; a trace from outside needs the sender on this machine (a veth peer in a namespace of \`ip netns\`)`);
    }
    for (const p of candidates) {
      let fd: number;
      try {
        fd = fs.openSync(p, 'r');
      } catch {
        continue;
      }
      try {
        const fdAttr = Buffer.alloc(4);
        fdAttr.writeUInt32LE(fd, 0);
        const r = await s.request(RTM_GETNSID, Buffer.alloc(4), [[NETNSA_FD, fdAttr]]);
        if (r.readUInt16LE(4) === NLMSG_ERROR || r.readUInt16LE(4) !== RTM_NEWNSID) continue;
        if (attrs(r, 20).get(NETNSA_NSID)?.readInt32LE(0) === nsid) return p;
      } finally {
        fs.closeSync(fd);
      }
    }
    throw invalidParameter(`outside:${ip}: the namespace behind ${ifname} (nsid ${nsid}) is not among the named namespaces (ip netns list)`);
  } finally {
    s.close();
  }
}
