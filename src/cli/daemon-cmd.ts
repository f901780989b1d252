// `loom daemon`: flags in dockerd's spirit, defaults that work on a fresh machine.
import { parseFlags, f } from './flags.ts';
import { runDaemon } from '../daemon.ts';
import { checkLogConfig } from '../api/configcheck.ts';
import { parseUiAddress } from '../ui/address.ts';
import { DOCKER_DEFAULT_POOLS, parsePoolFlag } from '../ipam/ipam.ts';
import { DEFAULT_PLUGIN_DIRS } from '../plugins/discovery.ts';
import { BR_NETFILTER_MODES, type BrNetfilterMode } from '../drivers/brnetfilter.ts';

const specs = [
  f('--data-root', 'string'), f('--exec-root', 'string'), f('-H,--host', 'list'), f('--bip', 'string'),
  f('--icc', 'bool'), f('--ip-masq', 'bool'), f('--log-level', 'string'), f('-D,--debug', 'bool'),
  f('--default-address-pool', 'list'), f('--netns-dir', 'string'), f('--netns-prefix', 'string'),
  f('-b,--bridge-name', 'string'), f('--resolv-conf', 'string'), f('--hosts-file', 'string'), f('--cgroup-parent', 'string'),
  f('--plugins-dir', 'list'), f('-G,--group', 'string'), f('--log-opt', 'list'), f('--log-driver', 'string'), f('--network-plugin-socket', 'string'), f('--network-plugin-docker-host', 'string'),
  f('--cluster-store', 'string'), f('--cluster-advertise', 'string'), f('--cluster-store-opt', 'list'),
  f('--insecure-registry', 'list'), f('--tls', 'bool'), f('--tlsverify', 'bool'), f('--tlscacert', 'string'), f('--tlscert', 'string'), f('--tlskey', 'string'), f('--certs-dir', 'string'),
  f('--ui', 'string'),
  f('--ovs', 'string'), f('--br-netfilter', 'string'),
];

export async function daemonCommand(argv: string[], envHost: string): Promise<number> {
  const { flags } = parseFlags(argv, specs, { interspersed: true });
  // checked before anything starts: a bad value must not leave a half-started daemon behind
  if (flags.ui !== undefined) {
    try {
      parseUiAddress(flags.ui);
    } catch (e) {
      process.stderr.write(`loom daemon: ${(e as Error).message}\n`);
      return 1;
    }
  }
  const execRoot = flags['exec-root'] ?? '/run/loom';
  // -H, repeatable as dockerd's: unix://PATH (or a bare path) and tcp://ADDR:PORT. The unix socket is
  // always there (bin/loom talks to it): the default one when no -H names one.
  const hosts: string[] = flags.host;
  let socket = `${execRoot}/loom.sock`;
  const tcpHosts: { host: string; port: number }[] = [];
  let unixGiven = false;
  for (const h of hosts) {
    const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]*)(?::(\d+))?\/?$/.exec(h);
    if (m) {
      const tlsOn = flags.tlsverify === true || flags.tls === true;
      const port = m[2] ? Number(m[2]) : tlsOn ? 2376 : 2375;
      if (!(port > 0 && port < 65536)) throw new Error(`invalid -H ${h}: bad port`);
      tcpHosts.push({ host: (m[1] || '0.0.0.0').replace(/^\[|\]$/g, ''), port });
    } else if (/^unix:\/\//.test(h) || h.startsWith('/')) {
      if (unixGiven) throw new Error(`-H ${h}: loom listens on one unix socket`);
      socket = h.replace(/^unix:\/\//, '');
      unixGiven = true;
    } else {
      throw new Error(`invalid -H ${h}: use unix:///path or tcp://ADDR:PORT`);
    }
  }
  if (!unixGiven && !flags['exec-root'] && envHost && envHost.startsWith('unix://')) socket = envHost.replace(/^unix:\/\//, '');
  // As dockerd 27+: TCP without TLS only when TLS is turned off explicitly (--tls=false or --tlsverify=false).
  const tlsOff = flags.tls === false || flags.tlsverify === false;
  const tlsOn = flags.tlsverify === true || flags.tls === true || (!tlsOff && !!(flags.tlscert || flags.tlskey));
  if (tcpHosts.length && !tlsOn && !tlsOff) {
    throw new Error(`-H ${hosts.find((h) => h.startsWith('tcp://'))}: refusing to listen on TCP without TLS (anyone reaching it would be root here): use --tlsverify --tlscacert --tlscert --tlskey, or --tls=false to force it`);
  }
  // dockerd's --log-driver/--log-opt: json-file only, its size limits only (checked before anything starts)
  const logOpts: Record<string, string> = {};
  for (const o of flags['log-opt'] as string[]) {
    const i = o.indexOf('=');
    if (i <= 0) throw new Error(`invalid log opt: ${o}: expected key=value`);
    logOpts[o.slice(0, i)] = o.slice(i + 1);
  }
  checkLogConfig({ Type: flags['log-driver'] ?? '', Config: logOpts });
  const brNetfilter = (flags['br-netfilter'] ?? 'auto') as BrNetfilterMode;
  if (!BR_NETFILTER_MODES.includes(brNetfilter)) {
    process.stderr.write(`loom daemon: invalid --br-netfilter ${JSON.stringify(brNetfilter)}: expected one of ${BR_NETFILTER_MODES.join(', ')}\n`);
    return 1;
  }
  await runDaemon({
    dataRoot: flags['data-root'] ?? '/var/lib/loom',
    execRoot,
    socket,
    tcpHosts,
    tls: { enabled: tlsOn, verify: flags.tlsverify === true, ca: flags.tlscacert, cert: flags.tlscert, key: flags.tlskey },
    socketGroup: flags.group,
    logOpts,
    bip: flags.bip,
    icc: flags.icc ?? true,
    ipMasq: flags['ip-masq'] ?? true,
    logLevel: flags.debug ? 'debug' : flags['log-level'] ?? 'info',
    pools: flags['default-address-pool'].length ? flags['default-address-pool'].map(parsePoolFlag) : DOCKER_DEFAULT_POOLS,
    netnsDir: flags['netns-dir'] ?? '/run/netns',
    netnsPrefix: flags['netns-prefix'] ?? 'loom-',
    bridgeName: flags['bridge-name'] ?? 'loom0',
    resolvConf: flags['resolv-conf'] ?? '/etc/resolv.conf',
    hostsFile: flags['hosts-file'] ?? '/etc/hosts',
    cgroupParent: flags['cgroup-parent'],
    clusterStore: flags['cluster-store'],
    clusterAdvertise: flags['cluster-advertise'],
    clusterStoreOpts: flags['cluster-store-opt'],
    insecureRegistries: flags['insecure-registry'],
    certsDir: flags['certs-dir'],
    ui: flags.ui,
    // legacy plugins: sockets (NAME.sock) and spec files (NAME.spec|json), in Docker's places by default
    pluginDirs: flags['plugins-dir'].length ? flags['plugins-dir'] : DEFAULT_PLUGIN_DIRS,
    networkPluginSocket: flags['network-plugin-socket'],
    networkPluginDockerHost: flags['network-plugin-docker-host'],
    // openvswitch networks: managed (loom's own ovsdb-server/ovs-vswitchd) or unix:PATH (src/drivers/ovs.ts)
    ovs: flags.ovs,
    brNetfilter,
  });
  return new Promise<number>(() => {}); // runs until a signal
}
