// The topology as text (a tree for the terminal), Graphviz dot, and SVG. Pure functions of a Topology.
//
// The SVG is laid out here rather than by an external layout engine (none is installed on these machines,
// and the picture is always the same shape): the host on top, one column per network with its bridge and,
// below it on a vertical bus, the containers whose first endpoint is on that network; a container's other
// endpoints are drawn as lines to those networks' bridges. Every label's box is measured (monospace, fixed
// advance) and columns are as wide as their widest box, so no two labels overlap however many containers
// there are. Every node carries data-* attributes the web page (src/ui) uses for clicks and highlights.
import { type Topology, type TopoContainer, type TopoEndpoint, type TopoNetwork, portText } from './model.ts';

function netSummary(n: TopoNetwork): string {
  const parts = [n.driver];
  if (n.bridge) parts.push(n.bridge);
  parts.push(...n.subnets);
  if (n.gateways.length) parts.push(`gateway ${n.gateways.join(', ')}`);
  if (n.icc === false) parts.push('icc=false');
  if (n.masquerade === false) parts.push('no masquerade');
  if (n.internal) parts.push('internal');
  if (n.parent) parts.push(`parent ${n.parent}`);
  if (n.vni) parts.push(`vxlan ${n.vni}`);
  if (n.tunnel) parts.push(`vtep ${n.tunnel.local ?? '?'}${n.tunnel.remotes.length ? ` → ${n.tunnel.remotes.map((r) => `${r.vtep} (${r.endpoints.length} endpoint${r.endpoints.length === 1 ? '' : 's'})`).join(', ')}` : ''}`);
  return parts.join(', ');
}

function epText(e: TopoEndpoint): string {
  const addr = [e.ipv4 ? `${e.ipv4}/${e.prefix4}` : '', e.ipv6 ? `${e.ipv6}/${e.prefix6}` : ''].filter(Boolean).join(' ');
  return `${e.ifname} ${addr}${addr ? ' ' : ''}${e.mac}${e.hostVeth ? ` ↔ ${e.hostVeth}` : ''}`;
}

/** The network a container is drawn under (its first endpoint's), or a pseudo column. */
function columnOf(c: TopoContainer, t: Topology): string {
  if (c.endpoints.length) return c.endpoints[0]!.networkId;
  if (c.state !== 'running' && c.state !== 'paused') return 'stopped';
  const byName = t.networks.find((n) => n.name === c.networkMode);
  if (byName) return byName.id;
  if (c.networkMode.startsWith('container:')) return 'shared';
  return 'other';
}

const PSEUDO: Record<string, string> = { stopped: 'not running', shared: 'sharing another container\'s namespace', other: 'other' };

function modeText(c: TopoContainer): string {
  if (c.networkMode === 'host') return "the host's network stack";
  if (c.networkMode === 'none') return 'only lo';
  if (c.networkMode.startsWith('container:')) return `namespace of ${c.networkMode.slice(10, 22)}`;
  return '';
}

// ------------------------------------------------------------------------------------------------ text

export function renderText(t: Topology): string {
  const out: string[] = [];
  const up = t.host.uplinks.map((u) => `${u.name} ${u.addresses.join(' ')}`.trim()).join('; ');
  out.push(`host ${t.host.name}${up ? ` (uplinks: ${up})` : ''}`);
  const cols = new Map<string, TopoContainer[]>();
  for (const c of t.containers) {
    const k = columnOf(c, t);
    (cols.get(k) ?? cols.set(k, []).get(k)!).push(c);
  }
  const groups: { title: string; items: TopoContainer[]; net?: TopoNetwork }[] = t.networks.map((n) => ({ title: `network ${n.name} (${netSummary(n)})`, items: cols.get(n.id) ?? [], net: n }));
  for (const k of ['shared', 'other', 'stopped']) if (cols.get(k)?.length) groups.push({ title: PSEUDO[k]!, items: cols.get(k)! });
  groups.forEach((g, gi) => {
    const lastG = gi === groups.length - 1;
    out.push(`${lastG ? '└── ' : '├── '}${g.title}`);
    const pre = lastG ? '    ' : '│   ';
    const remote = (g.net?.tunnel?.remotes ?? []).flatMap((r) => r.endpoints.map((e) => `${e.name} on host ${r.host.slice(0, 12)} (vtep ${r.vtep}) ${e.ipv4} ${e.mac}`));
    g.items.forEach((c, ci) => {
      const lastC = ci === g.items.length - 1 && !remote.length;
      const head = `${c.name} [${c.state}]`;
      const eps = c.endpoints.filter((e) => !g.net || e.networkId === g.net.id);
      const others = c.endpoints.filter((e) => g.net && e.networkId !== g.net.id);
      const first = eps[0] ? epText(eps[0]) : modeText(c);
      out.push(`${pre}${lastC ? '└── ' : '├── '}${head}${first ? ` ${first}` : ''}`);
      const sub = pre + (lastC ? '    ' : '│   ');
      for (const e of eps.slice(1)) out.push(`${sub}${epText(e)}`);
      for (const e of others) out.push(`${sub}also on ${e.network}: ${epText(e)}`);
      if (c.ports.length) out.push(`${sub}ports ${c.ports.map(portText).join(', ')}`);
      if (c.links.length) out.push(`${sub}links ${c.links.map((l) => (l.alias === l.name ? l.name : `${l.name}:${l.alias}`)).join(', ')}`);
    });
    remote.forEach((r, ri) => out.push(`${pre}${ri === remote.length - 1 ? '└── ' : '├── '}remote: ${r}`));
  });
  return out.join('\n') + '\n';
}

// ------------------------------------------------------------------------------------------------ dot

const dq = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;

export function renderDot(t: Topology): string {
  const out = ['digraph loom {', '  rankdir=TB;', '  node [shape=box, fontname="monospace", fontsize=10];', '  edge [fontname="monospace", fontsize=9];'];
  const up = t.host.uplinks.map((u) => `${u.name} ${u.addresses.join(' ')}`.trim());
  out.push(`  host [label=${dq([`host ${t.host.name}`, ...up].join('\n'))}, shape=box3d];`);
  for (const n of t.networks) {
    out.push(`  ${dq(`net:${n.id}`)} [label=${dq(`${n.name}\n${netSummary(n)}`)}, shape=component];`);
    if (n.driver !== 'null') out.push(`  host -> ${dq(`net:${n.id}`)} [dir=none${n.internal ? ', style=dashed, label="internal"' : ''}];`);
  }
  for (const c of t.containers) {
    const lines = [c.name, ...c.endpoints.map((e) => `${e.ifname} ${e.ipv4 ?? ''}`.trim()), ...c.ports.map(portText)];
    out.push(`  ${dq(`ctr:${c.id}`)} [label=${dq(lines.join('\n'))}${c.state === 'running' ? '' : ', style=dotted'}];`);
    for (const e of c.endpoints) out.push(`  ${dq(`net:${e.networkId}`)} -> ${dq(`ctr:${c.id}`)} [dir=none, label=${dq(`${e.hostVeth ?? ''} ↔ ${e.ifname}`.trim())}];`);
    if (!c.endpoints.length) {
      const n = t.networks.find((x) => x.name === c.networkMode);
      if (n) out.push(`  ${dq(`net:${n.id}`)} -> ${dq(`ctr:${c.id}`)} [dir=none, style=dotted];`);
    }
    for (const l of c.links) {
      const to = t.containers.find((x) => x.name === l.name);
      if (to) out.push(`  ${dq(`ctr:${c.id}`)} -> ${dq(`ctr:${to.id}`)} [style=dashed, label=${dq(`link ${l.alias}`)}];`);
    }
  }
  out.push('}');
  return out.join('\n') + '\n';
}

// ------------------------------------------------------------------------------------------------ svg

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');

/** Monospace metrics used for every box: width of one character and line height at font-size 12. */
export const CHAR_W = 7.3;
export const LINE_H = 15;
const PAD = 8, GAP_X = 28, GAP_Y = 12, MARGIN = 20;

export interface Box { x: number; y: number; w: number; h: number }

function boxFor(lines: string[]): { w: number; h: number } {
  const chars = Math.max(...lines.map((l) => [...l].length), 4);
  return { w: Math.ceil(chars * CHAR_W + 2 * PAD), h: lines.length * LINE_H + PAD };
}

function textBlock(x: number, y: number, lines: string[], cls: string[] = []): string {
  return lines.map((l, i) => `<text x="${x + PAD}" y="${y + PAD / 2 + (i + 1) * LINE_H - 4}"${cls[i] ? ` class="${cls[i]}"` : ''}>${esc(l)}</text>`).join('');
}

export function renderSvg(t: Topology): string {
  const hostLines = [`host ${t.host.name}`, ...t.host.uplinks.map((u) => `${u.name} ${u.addresses.join(' ')}`.trim())];
  const hostBox = { x: MARGIN, y: MARGIN, ...boxFor(hostLines) };
  // columns: each network, then the pseudo columns that have containers
  const cols: { key: string; lines: string[]; net?: TopoNetwork; items: TopoContainer[] }[] = t.networks.map((n) => ({ key: n.id, net: n, items: [], lines: [n.name, ...netSummary(n).match(/.{1,34}(,\s|$)/g)!.map((s) => s.trim())] }));
  const byKey = new Map(cols.map((c) => [c.key, c]));
  for (const c of t.containers) {
    const k = columnOf(c, t);
    let col = byKey.get(k);
    if (!col) {
      col = { key: k, items: [], lines: [PSEUDO[k] ?? k] };
      cols.push(col);
      byKey.set(k, col);
    }
    col.items.push(c);
  }
  const ctrLines = (c: TopoContainer, col: string) => {
    const eps = c.endpoints.filter((e) => e.networkId === col);
    const others = c.endpoints.filter((e) => e.networkId !== col);
    return [
      c.name + (c.state === 'running' ? '' : ` (${c.state})`),
      ...eps.map((e) => `${e.ifname} ${e.ipv4 ?? e.ipv6 ?? ''}`.trim()),
      ...(eps.length || others.length ? [] : [modeText(c)].filter(Boolean)),
      ...others.map((e) => `${e.ifname} ${e.ipv4 ?? ''} (${e.network})`.replace(/ +/g, ' ')),
      ...(c.ports.length ? [`ports ${c.ports.map(portText).join(' ')}`] : []),
    ];
  };
  const parts: string[] = [];
  const nodes: { kind: 'bridge' | 'container'; id: string; box: Box }[] = [];
  const bridgeY = hostBox.y + hostBox.h + 40;
  let x = MARGIN;
  const bridgeBoxes = new Map<string, Box>();
  const ctrBoxes = new Map<string, Box>();
  const colShapes: { col: typeof cols[number]; bx: Box; items: { c: TopoContainer; box: Box; lines: string[] }[] }[] = [];
  for (const col of cols) {
    const nb = boxFor(col.lines);
    const items = col.items.map((c) => ({ c, lines: ctrLines(c, col.key), box: { x: 0, y: 0, w: 0, h: 0 } }));
    const indent = 14; // room for the bus line left of the containers
    const width = Math.max(nb.w, ...items.map((i) => boxFor(i.lines).w + indent));
    const bx: Box = { x, y: bridgeY, w: nb.w, h: nb.h };
    let y = bridgeY + nb.h + 24;
    for (const it of items) {
      const b = boxFor(it.lines);
      it.box = { x: x + indent, y, w: b.w, h: b.h };
      y += b.h + GAP_Y;
      ctrBoxes.set(it.c.id, it.box);
    }
    bridgeBoxes.set(col.key, bx);
    colShapes.push({ col, bx, items });
    x += width + GAP_X;
  }
  const width = Math.max(x - GAP_X + MARGIN, hostBox.x + hostBox.w + MARGIN);
  const height = Math.max(...colShapes.flatMap((s) => [s.bx.y + s.bx.h, ...s.items.map((i) => i.box.y + i.box.h)]), hostBox.y + hostBox.h) + MARGIN;

  // edges first, so boxes are drawn over them
  const edges: string[] = [];
  for (const s of colShapes) {
    if (s.col.net && s.col.net.driver !== 'null') {
      const cx = s.bx.x + s.bx.w / 2;
      edges.push(`<path class="uplink${s.col.net.internal ? ' internal' : ''}" d="M${hostBox.x + hostBox.w / 2},${hostBox.y + hostBox.h} L${hostBox.x + hostBox.w / 2},${bridgeY - 16} L${cx},${bridgeY - 16} L${cx},${bridgeY}"/>`);
    }
    if (s.items.length) {
      const busX = s.bx.x + 6;
      const last = s.items[s.items.length - 1]!.box;
      edges.push(`<path class="bus" d="M${busX},${s.bx.y + s.bx.h} L${busX},${last.y + last.h / 2}"/>`);
      for (const it of s.items) {
        const ep = it.c.endpoints.find((e) => e.networkId === s.col.key);
        edges.push(`<path class="port" data-container="${esc(it.c.id)}" data-network="${esc(s.col.key)}" d="M${busX},${it.box.y + it.box.h / 2} L${it.box.x},${it.box.y + it.box.h / 2}"><title>${esc(ep ? `${ep.hostVeth ?? ''} ↔ ${ep.ifname}`.trim() : '')}</title></path>`);
      }
    }
  }
  for (const c of t.containers) {
    const from = ctrBoxes.get(c.id)!;
    for (const e of c.endpoints.slice(1)) {
      const to = bridgeBoxes.get(e.networkId);
      if (!to) continue;
      edges.push(`<path class="port extra" data-container="${esc(c.id)}" data-network="${esc(e.networkId)}" d="M${from.x + from.w},${from.y + LINE_H} L${to.x + to.w / 2},${to.y + to.h}"><title>${esc(`${e.hostVeth ?? ''} ↔ ${e.ifname} on ${e.network}`.trim())}</title></path>`);
    }
  }
  parts.push(...edges);
  parts.push(`<g class="node host" data-kind="host"><rect x="${hostBox.x}" y="${hostBox.y}" width="${hostBox.w}" height="${hostBox.h}" rx="4"/>${textBlock(hostBox.x, hostBox.y, hostLines, ['title'])}</g>`);
  for (const s of colShapes) {
    const n = s.col.net;
    const cls = n ? `node bridge${n.internal ? ' internal' : ''}${n.icc === false ? ' noicc' : ''}` : 'node group';
    parts.push(`<g class="${cls}"${n ? ` data-kind="network" data-network="${esc(n.id)}" data-name="${esc(n.name)}"` : ''}><rect x="${s.bx.x}" y="${s.bx.y}" width="${s.bx.w}" height="${s.bx.h}" rx="4"/>${textBlock(s.bx.x, s.bx.y, s.col.lines, ['title'])}</g>`);
    if (n) nodes.push({ kind: 'bridge', id: n.id, box: s.bx });
    for (const it of s.items) {
      parts.push(`<g class="node container ${esc(it.c.state)}" data-kind="container" data-id="${esc(it.c.id)}" data-name="${esc(it.c.name)}"><rect x="${it.box.x}" y="${it.box.y}" width="${it.box.w}" height="${it.box.h}" rx="4"/>${textBlock(it.box.x, it.box.y, it.lines, ['title'])}</g>`);
      nodes.push({ kind: 'container', id: it.c.id, box: it.box });
    }
  }
  const style = [
    'text{font-family:monospace;font-size:12px;fill:#222}', '.title{font-weight:bold}',
    'rect{fill:#fff;stroke:#555;stroke-width:1}', '.host rect{fill:#eef3ff}', '.bridge rect{fill:#e9f7ec}',
    '.bridge.internal rect{stroke-dasharray:4 2}', '.bridge.noicc rect{fill:#fff4e0}', '.group rect{fill:#f4f4f4;stroke-dasharray:2 2}',
    '.container.exited rect,.container.created rect{fill:#f4f4f4}', 'path{fill:none;stroke:#888;stroke-width:1.2}',
    '.extra{stroke-dasharray:5 3}', '.uplink.internal{stroke-dasharray:2 4}',
  ].join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${Math.ceil(width)}" height="${Math.ceil(height)}" viewBox="0 0 ${Math.ceil(width)} ${Math.ceil(height)}" class="loom-topology"><style>${style}</style>${parts.join('\n')}</svg>\n`;
}

export function renderTopology(t: Topology, format: string): string {
  switch (format) {
    case 'text': return renderText(t);
    case 'dot': return renderDot(t);
    case 'svg': return renderSvg(t);
    case 'json': return JSON.stringify(t, null, 2) + '\n';
    default: throw new Error(`unknown format ${JSON.stringify(format)}: use text, json, dot or svg`);
  }
}
