// `loom explain run|create|connect|network create ...`: the ip/nft/sysctl commands equivalent to what
// loom would do for that operation, in order, computed from the daemon's current state (the next free
// subnet and address, the bridge, the firewall's whole table) and changing nothing. loom itself does
// these steps through netlink and libnftables in process; the commands are what the reference texts
// teach by hand. Values loom draws at random (network ids, veth names, the bridge's MAC) are drawn here
// too, so the plan runs as printed but its random names differ from the ones the real operation gets.
import crypto from 'node:crypto';
import type { Daemon } from '../daemon.ts';
import type { ContainerRecord, IpamConfig, NetworkRecord } from '../core/types.ts';
import { allocate, contains, firstHost, macFromIpv4, nextFreePool, parseCidr, type Cidr } from '../ipam/ipam.ts';
import { renderAddPorts, renderRuleset } from '../firewall/ruleset.ts';
import type { FwPort } from '../firewall/model.ts';
import { vethName } from '../core/names.ts';
import { randomMac } from '../drivers/bridge.ts';
import { parsePublish } from '../cli/portspec.ts';
import { invalidParameter, notFound, conflict } from '../util/errors.ts';

export interface Step { cmd: string; why: string }
export interface Plan { Operation: string; Steps: Step[]; Notes: string[] }

const OPT_BRIDGE_NAME = 'com.docker.network.bridge.name';
const OPT_ICC = 'com.docker.network.bridge.enable_icc';
const OPT_MTU = 'com.docker.network.driver.mtu';
const truthy = (v: string | undefined, d: boolean) => (v === undefined || v === '' ? d : ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v));

/** Flags of run/create that take a value (others are switches); network ones are used, the rest only skipped. */
const VALUE_FLAGS = new Set(['--name', '--network', '--net', '-p', '--publish', '--ip', '--link', '--mac-address', '--network-alias', '--alias', '-e', '--env', '--env-file',
  '-l', '--label', '-w', '--workdir', '-u', '--user', '--entrypoint', '--restart', '--add-host', '--dns', '--dns-search', '--dns-option', '--hostname', '-h', '--expose',
  '--stop-signal', '--stop-timeout', '--detach-keys', '--cgroup-parent', '-v', '--volume', '--mount']);
const SWITCHES = new Set(['-d', '--detach', '-i', '--interactive', '-t', '--tty', '-it', '-ti', '-dit', '-itd', '--rm', '--init', '-P', '--publish-all', '--privileged']);

interface RunArgs { name?: string; network: string; publish: string[]; ip?: string; links: string[]; mac?: string; image?: string }

function parseRun(argv: string[]): RunArgs {
  const out: RunArgs = { network: 'bridge', publish: [], links: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-')) {
      out.image = a;
      break;
    }
    const eq = a.indexOf('=');
    const flag = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    let v: string | undefined;
    if (VALUE_FLAGS.has(flag)) v = a.startsWith('--') && eq > 0 ? a.slice(eq + 1) : argv[++i];
    else if (!SWITCHES.has(flag)) throw invalidParameter(`explain: unknown or unsupported flag: ${flag}`);
    if (VALUE_FLAGS.has(flag) && v === undefined) throw invalidParameter(`explain: flag needs an argument: ${flag}`);
    if (flag === '--name') out.name = v;
    else if (flag === '--network' || flag === '--net') out.network = v!;
    else if (flag === '-p' || flag === '--publish') out.publish.push(v!);
    else if (flag === '--ip') out.ip = v;
    else if (flag === '--link') out.links.push(v!);
    else if (flag === '--mac-address') out.mac = v;
  }
  if (!out.image) throw invalidParameter('explain: "run" requires at least 1 argument (the image)');
  return out;
}

export class Explainer {
  private readonly d: Daemon;
  constructor(d: Daemon) {
    this.d = d;
  }

  explain(args: string[]): Plan {
    if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw invalidParameter('explain: Args must be a list of strings');
    const [verb, ...rest] = args;
    if (verb === 'network' && rest[0] === 'create') return this.networkCreate(rest.slice(1));
    if (verb === 'network' && rest[0] === 'connect') return this.connect(rest.slice(1));
    if (verb === 'connect') return this.connect(rest);
    if (verb === 'run') return this.run(rest, false);
    if (verb === 'create') return this.run(rest, true);
    throw invalidParameter(`explain: cannot explain ${JSON.stringify(args.slice(0, 2).join(' '))}: use run, create, connect or network create`);
  }

  // ------------------------------------------------------------------------------ network create

  private networkCreate(argv: string[]): Plan {
    let driver = 'bridge', name: string | undefined, internal = false;
    const subnets: string[] = [], gateways: string[] = [], opts: Record<string, string> = {};
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
      const val = () => inline ?? argv[++i] ?? (() => { throw invalidParameter(`explain: flag needs an argument: ${flag}`); })();
      if (flag === '-d' || flag === '--driver') driver = val();
      else if (flag === '--subnet') subnets.push(val());
      else if (flag === '--gateway') gateways.push(val());
      else if (flag === '--internal') internal = true;
      else if (flag === '-o' || flag === '--opt') {
        const kv = val(), eq = kv.indexOf('=');
        if (eq <= 0) throw invalidParameter(`explain: invalid option ${JSON.stringify(kv)} (expected key=value)`);
        opts[kv.slice(0, eq)] = kv.slice(eq + 1);
      } else if (flag.startsWith('-')) throw invalidParameter(`explain: unknown or unsupported flag: ${flag}`);
      else if (name) throw invalidParameter('explain: "network create" requires exactly 1 argument.');
      else name = a;
    }
    if (!name) throw invalidParameter('explain: "network create" requires exactly 1 argument.');
    if (driver !== 'bridge') throw invalidParameter(`explain: only bridge networks are explained (not ${JSON.stringify(driver)})`);
    if (subnets.length > 1) throw invalidParameter('explain: one --subnet at most');
    if (this.d.networks.find(name)?.name === name) throw conflict(`network with name ${name} already exists`);
    const notes: string[] = [];
    let subnet: Cidr;
    if (subnets[0]) subnet = parseCidr(subnets[0]);
    else {
      const used = this.d.networks.list().flatMap((n) => n.ipam.config.map((c) => parseCidr(c.Subnet)));
      const free = nextFreePool(this.d.opts.pools, used);
      if (!free) throw invalidParameter('explain: no free subnet in the default address pools');
      subnet = free;
      notes.push(`no --subnet: the next free pool is ${subnet.network}/${subnet.prefix} (loom also skips subnets the host routes)`);
    }
    const cidr = `${subnet.network}/${subnet.prefix}`;
    const gateway = gateways[0] ?? firstHost(subnet);
    const id = crypto.randomBytes(32).toString('hex');
    const bridge = opts[OPT_BRIDGE_NAME] || `br-${id.slice(0, 12)}`;
    if (!opts[OPT_BRIDGE_NAME]) notes.push(`the network id is random: this plan uses ${id.slice(0, 12)}, so the bridge is ${bridge}; loom's will differ`);
    const net: NetworkRecord = {
      id, name, driver: 'bridge', scope: 'local', created: '', enableIPv6: false,
      ipam: { driver: 'default', options: {}, config: [{ Subnet: cidr, Gateway: gateway } as IpamConfig] },
      internal, attachable: false, options: opts, labels: {}, bridge,
    };
    const mtu = Number(opts[OPT_MTU] || 0);
    const steps: Step[] = [
      { cmd: `ip link add ${bridge}${mtu ? ` mtu ${mtu}` : ''} type bridge`, why: 'the network\'s bridge (docker0 for the default network)' },
      { cmd: `ip link set ${bridge} address ${randomMac()}`, why: 'a fixed MAC: otherwise the bridge takes its lowest port\'s, which changes as containers come and go' },
      { cmd: `ip addr add ${gateway}/${subnet.prefix} dev ${bridge}`, why: 'the gateway address: containers\' default route points here' },
      { cmd: `ip link set ${bridge} up`, why: '' },
      { cmd: 'sysctl -w net.ipv4.ip_forward=1', why: 'the host routes between the bridge and its uplinks' },
      { cmd: `sysctl -w net.ipv4.conf.${bridge}.route_localnet=1`, why: 'published ports answer on 127.0.0.1 too (DNAT from loopback, no userland proxy)' },
    ];
    if (!truthy(opts[OPT_ICC], true)) steps.push({ cmd: `ip link set ${bridge} type bridge nf_call_iptables 1 nf_call_ip6tables 1`, why: 'icc=false: this bridge\'s bridged traffic must meet the forward hook (the namespace-wide net.bridge.bridge-nf-call-iptables is off: see --br-netfilter)' });
    const fwNet = this.d.networks.driver.firewallView(net);
    const state = this.d.firewall.state();
    if (fwNet) state.networks = [...state.networks, fwNet]; // an underlay network has no rules of its own
    steps.push({ cmd: `nft -f - <<'EOF'\n${renderRuleset(state).trimEnd()}\nEOF`, why: 'loom rewrites its two tables whole, in one transaction, with the new network\'s rules (masquerade, icc, isolation, internal)' });
    return { Operation: `network create ${name}`, Steps: steps, Notes: notes };
  }

  // ------------------------------------------------------------------------------ run / create / connect

  /** The next address loom's IPAM would give on `net` (round-robin after the last one handed out). */
  private nextAddress(net: NetworkRecord, want?: string): { ip: string; prefix: number; gateway?: string } {
    const c = net.ipam.config.find((x) => !x.Subnet.includes(':'));
    if (!c) throw invalidParameter(`network ${net.name} has no IPv4 subnet`);
    const sub = parseCidr(c.Subnet);
    if (want) {
      if (!contains(sub, want)) throw invalidParameter(`no configured subnet or ip-range contain the IP address ${want}`);
      return { ip: want, prefix: sub.prefix, gateway: c.Gateway };
    }
    const taken = new Set<string>([...(c.Gateway ? [c.Gateway] : []), ...Object.values(c.AuxiliaryAddresses ?? {})]);
    for (const ct of this.d.containers.list()) for (const e of Object.values(ct.endpoints)) if (e.networkId === net.id && e.ipv4) taken.add(e.ipv4);
    const ip = allocate(sub, taken, { range: c.IPRange ? parseCidr(c.IPRange) : undefined, after: net.lastAllocated?.[c.Subnet] });
    if (!ip) throw invalidParameter(`no available IPv4 addresses on network ${net.name}`);
    return { ip, prefix: sub.prefix, gateway: c.Gateway };
  }

  private attachSteps(net: NetworkRecord, ns: string, ifname: string, addr: { ip: string; prefix: number; gateway?: string }, mac: string, defaultRoute: boolean): Step[] {
    if (net.driver !== 'bridge') throw invalidParameter(`explain: only bridge networks are explained (network ${net.name} is ${net.driver})`);
    const veth = vethName();
    const mtu = Number(net.options[OPT_MTU] || 0);
    const steps: Step[] = [
      { cmd: `ip link add ${veth}${mtu ? ` mtu ${mtu}` : ''} type veth peer name ${ifname} address ${mac}${mtu ? ` mtu ${mtu}` : ''} netns ${ns}`, why: `a veth pair: ${veth} stays on the host, ${ifname} is created directly inside the container's namespace` },
      { cmd: `ip link set ${veth} master ${net.bridge}`, why: `plug the host end into the bridge of network ${net.name}` },
      { cmd: `ip link set ${veth} type bridge_slave hairpin on`, why: 'a container may reach its own published port through a host address' },
      { cmd: `ip link set ${veth} up`, why: '' },
      { cmd: `ip -n ${ns} addr add ${addr.ip}/${addr.prefix} dev ${ifname}`, why: `the address IPAM hands out next on ${net.name}` },
      { cmd: `ip -n ${ns} link set ${ifname} up`, why: '' },
    ];
    if (defaultRoute && !net.internal && addr.gateway) steps.push({ cmd: `ip -n ${ns} route add default via ${addr.gateway}`, why: `the way out: the bridge's address${net.internal ? '' : ''}` });
    return steps;
  }

  private run(argv: string[], createOnly: boolean): Plan {
    const r = parseRun(argv);
    const notes: string[] = [];
    if (r.name && this.d.containers.find(r.name)) throw conflict(`Conflict. The container name "/${r.name}" is already in use`);
    const name = r.name ?? `explained-${crypto.randomBytes(3).toString('hex')}`;
    if (!r.name) notes.push(`no --name: loom picks a random name; this plan uses ${name}`);
    if (createOnly) notes.push('create changes nothing in the kernel: a container gets its networking when it starts (as in Docker); these are the steps of its start');
    const steps: Step[] = [];
    const mode = r.network === 'default' ? 'bridge' : r.network;
    if (mode === 'host') {
      notes.push("--network host: the container uses the host's namespace; nothing is created, -p is ignored");
      return { Operation: `${createOnly ? 'create' : 'run'} ${name}`, Steps: steps, Notes: notes };
    }
    if (mode.startsWith('container:')) {
      notes.push(`--network ${mode}: the container joins that container's namespace; nothing is created`);
      return { Operation: `${createOnly ? 'create' : 'run'} ${name}`, Steps: steps, Notes: notes };
    }
    const ns = `${this.d.opts.netnsPrefix}${name}`;
    steps.push({ cmd: `ip netns add ${ns}`, why: `the container's own network namespace (loom bind-mounts it at ${this.d.opts.netnsDir}/${ns}; runc joins it)` });
    steps.push({ cmd: `ip -n ${ns} link set lo up`, why: '' });
    if (mode === 'none') return { Operation: `${createOnly ? 'create' : 'run'} ${name}`, Steps: steps, Notes: [...notes, '--network none: only lo'] };
    const net = this.d.networks.find(mode);
    if (!net) throw notFound(`network ${mode} not found`);
    const addr = this.nextAddress(net, r.ip);
    const mac = r.mac ?? macFromIpv4(addr.ip);
    steps.push(...this.attachSteps(net, ns, 'eth0', addr, mac, true));
    if (r.publish.length && !net.internal) {
      const { bindings } = parsePublish(r.publish);
      const ports: FwPort[] = [];
      for (const [k, bs] of Object.entries(bindings)) {
        const [cport, proto] = k.split('/') as [string, 'tcp' | 'udp' | 'sctp'];
        for (const b of bs) {
          if (!/^\d+$/.test(b.HostPort)) {
            notes.push(`-p ${b.HostPort || '(no host port)'}:${k}: loom picks a free host port at start; not shown`);
            continue;
          }
          ports.push({ proto, hostIp: b.HostIp && b.HostIp !== '0.0.0.0' ? b.HostIp : '', hostPort: Number(b.HostPort), hostPortEnd: Number(b.HostPort), containerIp: addr.ip, containerPort: Number(cport), containerPortEnd: Number(cport), bridge: net.bridge!, family: 4 });
        }
      }
      if (ports.length) steps.push({ cmd: `nft -f - <<'EOF'\n${renderAddPorts(ports).trimEnd()}\nEOF`, why: 'published ports: one element each in loom\'s DNAT maps (loom also holds each host port with a socket, so nothing else takes it)' });
    }
    if (r.links.length) notes.push('--link: a hosts entry, environment variables and (under icc=false) elements of the links set for the exposed ports');
    if (!net.isDefault) notes.push(`embedded DNS: loom answers at 127.0.0.11 inside the namespace (a socket it opens there; no command equivalent), /etc/resolv.conf points there`);
    return { Operation: `${createOnly ? 'create' : 'run'} ${name}`, Steps: steps, Notes: notes };
  }

  private connect(argv: string[]): Plan {
    const args = argv.filter((a) => !a.startsWith('-'));
    if (args.length !== argv.length) throw invalidParameter(`explain: unknown or unsupported flag: ${argv.find((a) => a.startsWith('-'))}`);
    const [netRef, ctrRef] = args;
    if (!netRef || !ctrRef) throw invalidParameter('explain: "network connect" requires exactly 2 arguments.');
    const net = this.d.networks.find(netRef);
    if (!net) throw notFound(`network ${netRef} not found`);
    const c: ContainerRecord | undefined = this.d.containers.find(ctrRef);
    if (!c) throw notFound(`No such container: ${ctrRef}`);
    if (c.endpoints[net.name]) throw conflict(`endpoint with name ${c.name} already exists in network ${net.name}`);
    if (!c.state.Running || !c.netnsPath) {
      return { Operation: `network connect ${net.name} ${c.name}`, Steps: [], Notes: ['the container is not running: connect only records the network; the steps happen at its next start'] };
    }
    const ifname = `eth${Object.keys(c.endpoints).length}`;
    const addr = this.nextAddress(net);
    const ns = c.netnsPath.split('/').pop()!;
    return { Operation: `network connect ${net.name} ${c.name}`, Steps: this.attachSteps(net, ns, ifname, addr, macFromIpv4(addr.ip), false), Notes: ['a second network gives no default route: the first network keeps it'] };
  }
}

export { renderPlan } from './render.ts';
