// loom as a Docker network plugin: the legacy plugin protocol (what src/drivers/remote.ts speaks as a
// client) served on a unix socket, so a real dockerd that finds it in its plugins directory
// (/run/docker/plugins/loom.sock) makes loom networks with `docker network create -d loom` and plugs its
// containers into them. Each dockerd network is a loom bridge network (`dockerd-<id12>`, or the name in
// `-o loom.name=NAME`) with the subnet and gateway dockerd's IPAM chose; each endpoint reserves its
// address in loom's IPAM; Join hands dockerd a veth whose other end is on loom's bridge (dockerd moves it
// into the container and sets its address, as with any remote driver). dockerd may also join an existing
// loom network (`-o loom.name=NET` with loom's IPAM): a bridge network, or an overlay network, which is how
// dockerd's containers get on a loom overlay across hosts (the address is claimed in the cluster store and
// the veth's other end is on the overlay's br0; there is no default route through it, as for loom's own
// overlay endpoints, and dockerd is told not to add its gateway bridge).
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { Daemon } from '../daemon.ts';
import type { EndpointRecord, NetworkRecord } from '../core/types.ts';
import { Rtnl } from '../kernel/rtnl.ts';
import { invalidParameter, LoomError, messageOf, notFound } from '../util/errors.ts';
import type { OverlayDriver } from '../drivers/overlay.ts';
import { PluginIpam } from './ipam.ts';

const LABEL = 'loom.dockerd.network';
const META = 'dockerd-ep:';
/** a dockerd network that uses an existing loom network (-o loom.name=NET): dockerd's id → loom's */
const ADOPTED = 'dockerd-net:';
const CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';

interface PluginEndpoint {
  endpointId: string;
  networkId: string;
  ep: EndpointRecord;
  /** the veth end dockerd moves into its container */
  peer: string;
}

type Handler = (body: any) => Promise<unknown> | unknown;

/** A dockerd endpoint's identity in loom's embedded DNS. */
const dnsId = (e: PluginEndpoint) => `dockerd:${e.endpointId}`;
/** how long a Join waits in the background for dockerd to list the container (it does once started) */
const NAME_WAIT_MS = 30_000;

export class NetworkPluginServer {
  private readonly d: Daemon;
  private readonly socket: string;
  private readonly eps = new Map<string, PluginEndpoint>();
  private server: http.Server | null = null;
  private rtnl: Rtnl | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly ipam: PluginIpam;
  /** dockerd's API socket (--network-plugin-docker-host unix:///PATH), asked for its containers' names */
  private readonly dockerSocket: string | null;
  /** endpoints whose names are being looked up (a Leave stops that) */
  private readonly naming = new Set<string>();

  constructor(d: Daemon, socket: string, dockerHost?: string) {
    this.d = d;
    this.socket = socket;
    if (dockerHost && !dockerHost.startsWith('unix://')) throw invalidParameter(`--network-plugin-docker-host ${dockerHost}: only unix:///PATH is supported`);
    this.dockerSocket = dockerHost ? dockerHost.slice('unix://'.length) : null;
    this.ipam = new PluginIpam(d);
    Object.assign(this.handlers, this.ipam.handlers);
    for (const { value } of d.store.metaWithPrefix(META)) {
      const e = JSON.parse(value) as PluginEndpoint;
      this.eps.set(e.endpointId, e);
    }
    const before = d.containers.externalEndpoints;
    d.containers.externalEndpoints = () => [...before(), ...[...this.eps.values()].map((e) => e.ep)];
  }

  private readonly handlers: Record<string, Handler> = {
    'Plugin.Activate': () => ({ Implements: ['NetworkDriver', 'IpamDriver'] }),
    'NetworkDriver.GetCapabilities': () => ({ Scope: 'local', ConnectivityScope: 'local' }),
    'NetworkDriver.CreateNetwork': (b) => this.createNetwork(b),
    'NetworkDriver.DeleteNetwork': (b) => this.deleteNetwork(b),
    'NetworkDriver.CreateEndpoint': (b) => this.createEndpoint(b),
    'NetworkDriver.DeleteEndpoint': (b) => this.deleteEndpoint(b),
    'NetworkDriver.EndpointOperInfo': () => ({ Value: {} }),
    'NetworkDriver.Join': (b) => this.join(b),
    'NetworkDriver.Leave': (b) => this.leave(b),
    'NetworkDriver.DiscoverNew': () => ({}),
    'NetworkDriver.DiscoverDelete': () => ({}),
    'NetworkDriver.ProgramExternalConnectivity': () => ({}),
    'NetworkDriver.RevokeExternalConnectivity': () => ({}),
  };

  async listen(): Promise<void> {
    fs.mkdirSync(path.dirname(this.socket), { recursive: true });
    try { fs.unlinkSync(this.socket); } catch { /* absent */ }
    this.rtnl = Rtnl.open();
    this.server = http.createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString()));
      req.on('end', () => {
        const method = (req.url ?? '').replace(/^\//, '');
        this.d.log.debug({ method, body: text }, 'network plugin call');
        const h = req.method === 'POST' ? this.handlers[method] : undefined;
        const reply = (status: number, v: unknown) => {
          res.writeHead(status, { 'Content-Type': CONTENT_TYPE });
          res.end(JSON.stringify(v));
        };
        if (!h) return reply(404, { Err: `loom: unknown plugin method ${method}` });
        const run = () => Promise.resolve().then(() => h(text ? JSON.parse(text) : {}));
        // one call at a time: dockerd's calls for one endpoint come in order, and so they are applied
        const p = this.queue.then(run, run);
        this.queue = p.catch(() => {});
        p.then((v) => reply(200, v ?? {}), (e) => {
          this.d.log.warn({ method, err: messageOf(e) }, 'network plugin call failed');
          reply(200, { Err: messageOf(e) });
        });
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.socket, () => resolve());
    });
    // after a restart: the names of dockerd's containers again
    for (const e of this.eps.values()) this.registerNames(e, {});
  }

  async close(): Promise<void> {
    this.naming.clear();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.rtnl?.close();
    try { fs.unlinkSync(this.socket); } catch { /* gone */ }
  }

  /** dockerd's endpoints on a loom network (so loom's `network rm` is refused while they live). */
  on(netId: string): { name: string; endpointId: string }[] {
    return [...this.eps.values()].filter((e) => e.networkId === netId).map((e) => ({ name: `dockerd:${e.endpointId.slice(0, 12)}`, endpointId: e.ep.id }));
  }

  private networkOf(dockerNetworkId: string): NetworkRecord {
    const adopted = this.d.store.getMeta(ADOPTED + dockerNetworkId);
    const n = adopted ? this.d.networks.find(adopted) : this.d.networks.list().find((x) => x.labels?.[LABEL] === dockerNetworkId);
    if (!n) throw notFound(`loom has no network for docker network ${dockerNetworkId}`);
    return n;
  }

  private async createNetwork(b: any): Promise<unknown> {
    const generic = (b.Options?.['com.docker.network.generic'] ?? {}) as Record<string, string>;
    const config = [...(b.IPv4Data ?? []), ...(b.IPv6Data ?? [])].map((x: any) => ({
      Subnet: String(x.Pool), ...(x.Gateway ? { Gateway: String(x.Gateway).split('/')[0] } : {}),
    }));
    const options = Object.fromEntries(Object.entries(generic).filter(([k]) => k !== 'loom.name'));
    const existing = generic['loom.name'] ? this.d.networks.find(generic['loom.name']) : undefined;
    if (existing) {
      // dockerd joins a loom network that exists: its subnet must be the one dockerd's IPAM gave
      if (!(existing.driver === 'bridge' && existing.bridge) && existing.driver !== 'overlay') {
        throw invalidParameter(`network ${existing.name} is a ${existing.driver} network: dockerd can join loom bridge and overlay networks`);
      }
      if (existing.driver === 'overlay' && !(b.IPv4Data ?? []).some((x: any) => x.AddressSpace === 'loom-global' || x.AddressSpace === 'loom-local')) {
        // dockerd's own IPAM would hand out addresses other hosts may hold
        throw invalidParameter(`network ${existing.name} is an overlay network: create the docker network with --ipam-driver loom --ipam-opt loom.name=${existing.name}`);
      }
      const subs = existing.ipam.config.map((c) => c.Subnet);
      for (const c of config) if (!subs.includes(c.Subnet)) throw notFound(`network ${existing.name} has no subnet ${c.Subnet}: create the docker network with --ipam-driver loom --ipam-opt loom.name=${existing.name}`);
      this.d.store.setMeta(ADOPTED + String(b.NetworkID), existing.id);
      return {};
    }
    if (generic['loom.driver'] !== undefined) {
      throw invalidParameter(`-o loom.driver: dockerd makes loom bridge networks; for an overlay, create it in loom (loom network create -d overlay NET) and join it with -o loom.name=NET --ipam-driver loom --ipam-opt loom.name=NET`);
    }
    const n = await this.d.networks.create({
      Name: generic['loom.name'] || `dockerd-${String(b.NetworkID).slice(0, 12)}`,
      Driver: 'bridge',
      EnableIPv6: (b.IPv6Data ?? []).length > 0,
      IPAM: { Driver: 'default', Config: config },
      Options: options,
      Labels: { [LABEL]: String(b.NetworkID) },
    });
    this.d.events.publish('network', 'create', n.id, { name: n.name, type: n.driver });
    return {};
  }

  private async deleteNetwork(b: any): Promise<unknown> {
    if (this.d.store.getMeta(ADOPTED + b.NetworkID)) {
      // a loom network dockerd only used: it stays
      this.d.store.deleteMeta(ADOPTED + b.NetworkID);
      return {};
    }
    const n = this.d.networks.list().find((x) => x.labels?.[LABEL] === b.NetworkID);
    if (!n) return {};
    await this.d.networks.remove(n, [...this.eps.values()].filter((e) => e.networkId === n.id).map((e) => ({ name: e.endpointId.slice(0, 12), endpointId: e.ep.id })));
    this.d.events.publish('network', 'destroy', n.id, { name: n.name, type: n.driver });
    return {};
  }

  private createEndpoint(b: any): unknown {
    const net = this.networkOf(b.NetworkID);
    const i = b.Interface ?? {};
    const ipv4 = i.Address ? String(i.Address).split('/')[0] : undefined;
    const ipv6 = i.AddressIPv6 ? String(i.AddressIPv6).split('/')[0] : undefined;
    const nets = this.d.networks;
    const e = this.d.store.tx(() => {
      // an address loom's IPAM handed dockerd: the endpoint takes it over
      if (ipv4) this.ipam.releasePlaceholder(net.id, ipv4);
      const ep = nets.allocateEndpoint(nets.get(net.id), `dockerd:${b.EndpointID}`, 'eth0', { ipv4, ipv6, mac: i.MacAddress || undefined });
      ep.phase = 'ready';
      const e: PluginEndpoint = { endpointId: String(b.EndpointID), networkId: net.id, ep, peer: `lp${String(b.EndpointID).slice(0, 10)}` };
      this.d.store.setMeta(META + e.endpointId, JSON.stringify(e));
      return e;
    });
    this.eps.set(e.endpointId, e);
    // the MAC goes back only when dockerd did not choose one (a remote driver may not change given fields)
    return { Interface: i.MacAddress ? {} : { MacAddress: e.ep.mac } };
  }

  /** The overlay driver, when the endpoint's network is an overlay. */
  private overlayOf(net: NetworkRecord | undefined): OverlayDriver | null {
    return net?.driver === 'overlay' ? this.d.networks.driverOf(net) as OverlayDriver : null;
  }

  /** Unplugs an endpoint's veth (nothing when it is not there). */
  private async unplug(e: PluginEndpoint): Promise<void> {
    const net = this.d.networks.find(e.networkId);
    const ov = this.overlayOf(net);
    if (ov) await ov.leave(net, e.ep);
    else await this.rtnl!.deleteLink(e.ep.hostVeth!);
  }

  private async deleteEndpoint(b: any): Promise<unknown> {
    const e = this.eps.get(b.EndpointID);
    if (!e) return {};
    await this.unplug(e);
    this.d.store.tx(() => {
      this.d.networks.releaseEndpoint(e.ep);
      this.d.store.deleteMeta(META + e.endpointId);
    });
    this.eps.delete(e.endpointId);
    return {};
  }

  private async join(b: any): Promise<unknown> {
    const e = this.eps.get(b.EndpointID);
    if (!e) throw notFound(`loom has no endpoint ${b.EndpointID}`);
    const net = this.d.networks.get(e.networkId);
    const ov = this.overlayOf(net);
    if (ov) {
      // the address is the cluster's: claimed in the store (another host may hold it) before anything is plugged
      if (!this.d.cluster) throw invalidParameter(`network ${net.name} is an overlay network and this daemon has no cluster store`);
      if (!this.d.cluster.holds(e.ep.id) && !(await this.d.cluster.claim(net, e.ep))) throw new LoomError(403, `address ${e.ep.ipv4} of network ${net.name} is in use on another host`);
      try {
        await ov.joinDetached(net, e.ep, e.peer);
      } catch (err) {
        this.d.cluster.release(e.ep);
        throw err;
      }
      this.registerNames(e, b);
      return { InterfaceName: { SrcName: e.peer, DstPrefix: 'eth' }, DisableGatewayService: true };
    }
    const bridge = net.bridge ? await this.rtnl!.getLink(net.bridge) : null;
    if (!bridge) throw notFound(`bridge of network ${net.name} is missing`);
    await this.rtnl!.deleteLink(e.ep.hostVeth!);
    // both ends here: dockerd moves the peer into its container's namespace itself
    await this.rtnl!.createVeth({ name: e.ep.hostVeth!, peerName: e.peer, peerNetnsPath: '/proc/self/ns/net', peerMac: e.ep.mac, master: bridge.index, up: true, hairpin: true, mtu: bridge.mtu });
    this.registerNames(e, b);
    return {
      InterfaceName: { SrcName: e.peer, DstPrefix: 'eth' },
      ...(e.ep.gateway4 && !net.internal ? { Gateway: e.ep.gateway4 } : {}),
      ...(e.ep.gateway6 && !net.internal ? { GatewayIPv6: e.ep.gateway6 } : {}),
    };
  }

  private async leave(b: any): Promise<unknown> {
    const e = this.eps.get(b.EndpointID);
    if (e) {
      this.naming.delete(e.endpointId);
      this.d.containers.dnsNames.remove(dnsId(e), e.networkId);
      await this.unplug(e);
    }
    return {};
  }

  /**
   * The names of dockerd's container in loom's embedded DNS, so loom's containers (and, on an overlay,
   * other hosts') reach it by name: the protocol does not carry them, so dockerd's API is asked (with
   * --network-plugin-docker-host) which container has this endpoint, once dockerd lists it (after the
   * Join returns: dockerd is still starting the container during the Join). Docker's names for it: its
   * name, its short id, its aliases on the network.
   */
  private registerNames(e: PluginEndpoint, join: { NetworkID?: string }): void {
    if (!this.dockerSocket) return;
    const net = this.d.networks.find(e.networkId);
    if (!net || net.isDefault) return;
    this.naming.add(e.endpointId);
    const until = Date.now() + NAME_WAIT_MS;
    const attempt = async (): Promise<void> => {
      if (!this.naming.has(e.endpointId)) return;
      const found = await this.dockerContainerOf(e.endpointId, String(join.NetworkID ?? '')).catch((err) => {
        this.d.log.debug({ endpoint: e.endpointId, err: messageOf(err) }, 'dockerd not asked for names');
        return null;
      });
      if (!this.naming.has(e.endpointId)) return;
      if (!found) {
        if (Date.now() < until) setTimeout(() => void attempt(), 200).unref();
        else this.naming.delete(e.endpointId);
        return;
      }
      this.naming.delete(e.endpointId);
      this.d.containers.dnsNames.add({ containerId: dnsId(e), networkId: net.id, names: found.names, ipv4: e.ep.ipv4, ipv6: e.ep.ipv6, ptrName: `${found.names[0]}.${net.name}` }, net.name);
    };
    setTimeout(() => void attempt(), 50).unref();
  }

  /** dockerd's container with this endpoint, and its names (lower-case), or null while it does not list it. */
  private dockerContainerOf(endpointId: string, networkId: string): Promise<{ names: string[] } | null> {
    const filters = encodeURIComponent(JSON.stringify(networkId ? { network: [networkId] } : {}));
    return new Promise((resolve, reject) => {
      const req = http.request({ socketPath: this.dockerSocket!, method: 'GET', path: `/v1.41/containers/json?all=1&filters=${filters}`, timeout: 5000 }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`dockerd answered ${res.statusCode}: ${text.trim()}`));
          for (const c of JSON.parse(text) as any[]) {
            const nets = Object.values(c.NetworkSettings?.Networks ?? {}) as any[];
            const mine = nets.find((n) => n?.EndpointID === endpointId);
            if (!mine) continue;
            const names = [...(c.Names ?? []).map((n: string) => n.replace(/^\//, '')), String(c.Id).slice(0, 12), ...(mine.Aliases ?? [])];
            return resolve({ names: [...new Set(names.map((n: string) => n.toLowerCase()))] });
          }
          resolve(null);
        });
      });
      req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
      req.on('error', reject);
      req.end();
    });
  }
}
