// The topology page: draws the daemon's SVG of the live topology, redraws on every container or network
// event (server-sent events), shows a clicked container's details and runs traces.
'use strict';

let topo = null;
let selected = null;
let lastTrace = null;

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) (k === 'class' ? (e.className = v) : e.setAttribute(k, v));
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
};

async function getJson(url, opts) {
  const r = await fetch(url, opts);
  const body = await r.json();
  if (!r.ok) throw new Error(body.message || r.statusText);
  return body;
}

// The SVG's elements by their markup: renderSvg writes one element per line, so an update re-parses and
// re-lays-out only the lines that changed (a container more is a box and its port), not the whole picture:
// with 200 containers a full redraw spends most of its time in style and layout of a thousand texts.
const SVG_NS = 'http://www.w3.org/2000/svg';
const markup = new WeakMap();
let svgStyle = null;

function drawSvg(pic, text) {
  const m = /^(<svg[^>]*>)(<style>[\s\S]*?<\/style>)([\s\S]*)<\/svg>\s*$/.exec(text);
  const parts = m ? m[3].split('\n') : [];
  let svg = pic.querySelector('svg');
  if (m && svg && svgStyle === m[2]) {
    const head = new DOMParser().parseFromString(`${m[1]}</svg>`, 'image/svg+xml').documentElement;
    for (const a of ['width', 'height', 'viewBox']) if (svg.getAttribute(a) !== head.getAttribute(a)) svg.setAttribute(a, head.getAttribute(a));
    const pool = new Map();
    for (const n of [...svg.children]) {
      const k = markup.get(n);
      if (k === undefined) continue;
      if (!pool.has(k)) pool.set(k, []);
      pool.get(k).push(n);
    }
    const wanted = parts.map((p) => pool.get(p)?.shift() ?? p);
    // the new lines, parsed at once
    const fresh = wanted.filter((w) => typeof w === 'string');
    if (fresh.length) {
      const g = document.createElementNS(SVG_NS, 'g');
      g.innerHTML = fresh.join('');
      if (g.children.length !== fresh.length) return fullDraw(pic, text, m, parts);
      const made = [...g.children];
      for (let i = 0, j = 0; i < wanted.length; i++) {
        if (typeof wanted[i] === 'string') {
          markup.set(made[j], wanted[i]);
          wanted[i] = made[j++];
        }
      }
    }
    for (const rest of pool.values()) for (const n of rest) n.remove();
    let ref = svg.querySelector(':scope > style').nextSibling;
    for (const n of wanted) {
      if (n === ref) ref = ref.nextSibling;
      else svg.insertBefore(n, ref);
    }
    return;
  }
  fullDraw(pic, text, m, parts);
}

function fullDraw(pic, text, m, parts) {
  pic.innerHTML = text;
  svgStyle = null;
  const svg = pic.querySelector('svg');
  const kids = svg ? [...svg.children].filter((n) => n.localName !== 'style') : [];
  if (!m || kids.length !== parts.length) return;
  kids.forEach((n, i) => markup.set(n, parts[i]));
  svgStyle = m[2];
}

async function refresh() {
  const [t, svg] = await Promise.all([getJson('/api/topology'), fetch('/api/topology.svg').then((r) => r.text())]);
  topo = t;
  const pic = $('#picture');
  drawSvg(pic, svg);
  const running = t.containers.filter((c) => c.state === 'running').length;
  $('#summary').textContent = `${t.host.name}: ${t.networks.length} networks, ${running} running containers of ${t.containers.length}`;
  if (selected && !t.containers.some((c) => c.id === selected)) selected = null;
  if (selected) select(selected, true);
  if (lastTrace) highlight(lastTrace);
  document.body.dataset.ready = String(Date.now());
}

// one listener for every container, also those drawn later
$('#picture').addEventListener('click', (ev) => {
  const g = ev.target.closest('g[data-kind="container"]');
  if (g) select(g.dataset.id);
});

let pending = null;
function scheduleRefresh() {
  if (pending) return;
  pending = setTimeout(() => {
    pending = null;
    refresh().catch(showError);
  }, 100);
}

function showError(e) {
  $('#summary').textContent = `error: ${e.message}`;
}

function netOf(id) {
  return topo.networks.find((n) => n.id === id);
}

function rulesFor(c) {
  const out = [];
  for (const e of c.endpoints) {
    const n = netOf(e.networkId);
    if (!n) continue;
    if (n.internal) out.push(`internal network ${n.name}: no way in or out`);
    if (n.icc === false) out.push(`--icc=false on ${n.name}: other containers of ${n.name} may not reach it (only --link exceptions and published ports)`);
    else if (n.icc) out.push(`inter-container communication on ${n.name}`);
    if (n.bridge && n.driver === 'bridge') out.push(`isolation: containers of other networks may not reach ${e.ipv4 ?? e.ifname} nor ${n.name}'s gateway`);
    if (n.masquerade && !n.internal) out.push(`outbound traffic from ${n.name} is masqueraded`);
  }
  for (const p of c.ports) out.push(`published port ${p.hostIp || '0.0.0.0'}:${p.hostPort} → ${c.name}:${p.containerPort}/${p.proto} (DNAT)`);
  for (const l of c.links) out.push(`--link ${l.name}${l.alias !== l.name ? `:${l.alias}` : ''}`);
  return out;
}

function select(id, keep) {
  selected = id;
  for (const g of document.querySelectorAll('.node.selected')) g.classList.remove('selected');
  const g = document.querySelector(`g[data-kind="container"][data-id="${id}"]`);
  if (g) g.classList.add('selected');
  const c = topo.containers.find((x) => x.id === id);
  if (!c) return;
  if (keep && $('#details').dataset.id === id) return;
  const d = $('#details');
  d.dataset.id = id;
  d.replaceChildren();
  d.append(el('h2', {}, c.name), el('div', { class: 'hint' }, `${c.id.slice(0, 12)} · ${c.state} · network mode ${c.networkMode}`));
  d.append(el('h3', {}, 'Interfaces'));
  const tbl = el('table', { id: 'ifaces' });
  for (const e of c.endpoints) {
    tbl.append(el('tr', {}, el('td', {}, e.ifname), el('td', {}, [e.ipv4 ? `${e.ipv4}/${e.prefix4}` : '', e.ipv6 ? `${e.ipv6}/${e.prefix6}` : ''].filter(Boolean).join(' ')), el('td', {}, e.mac), el('td', {}, `${e.hostVeth ?? ''} on ${e.network}`)));
  }
  if (!c.endpoints.length) tbl.append(el('tr', {}, el('td', {}, c.networkMode === 'none' ? 'only lo' : c.networkMode === 'host' ? "the host's interfaces" : '—')));
  d.append(tbl);
  d.append(el('h3', {}, 'DNS names'), el('div', { id: 'dns' }, c.dnsNames.length ? c.dnsNames.join(', ') : '— (default bridge: no embedded DNS)'));
  d.append(el('h3', {}, 'Published ports'), el('div', { id: 'ports' }, c.ports.length ? c.ports.map((p) => `${p.hostIp || '0.0.0.0'}:${p.hostPort}->${p.containerPort}/${p.proto}`).join(', ') : '—'));
  const rules = el('ul', { id: 'rules' });
  for (const r of rulesFor(c)) rules.append(el('li', {}, r));
  d.append(el('h3', {}, 'Rules that apply'), rules);

  d.append(el('h3', {}, 'Trace to…'));
  const form = el('form', { id: 'trace' });
  const dst = el('select', { name: 'dst', id: 'trace-dst' });
  for (const o of topo.containers.filter((x) => x.id !== id && x.state === 'running')) dst.append(el('option', { value: o.name }, o.name));
  dst.append(el('option', { value: 'host' }, 'host'));
  // containers of other hosts on this container's overlay networks (the trace crosses the tunnel)
  for (const e of c.endpoints) {
    for (const r of netOf(e.networkId)?.tunnel?.remotes ?? []) {
      for (const x of r.endpoints) if (x.name) dst.append(el('option', { value: x.name }, `${x.name} (host ${r.vtep})`));
    }
  }
  const proto = el('select', { name: 'proto', id: 'trace-proto' }, el('option', { value: 'icmp' }, 'icmp echo'), el('option', { value: 'tcp' }, 'tcp'), el('option', { value: 'udp' }, 'udp'));
  const port = el('input', { name: 'port', id: 'trace-port', type: 'number', min: '1', max: '65535', placeholder: 'port' });
  const v6 = el('input', { name: 'ipv6', id: 'trace-ipv6', type: 'checkbox' });
  const go = el('button', { type: 'submit', id: 'trace-go' }, 'trace');
  form.append(el('label', { for: 'trace-dst' }, 'to'), dst, el('label', { for: 'trace-proto' }, 'probe'), proto, el('label', { for: 'trace-port' }, 'port'), port);
  if (c.endpoints.some((e) => e.ipv6)) form.append(el('label', { for: 'trace-ipv6' }, 'IPv6'), v6);
  form.append(el('span'), go);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    runTrace(c.name, dst.value, proto.value, port.value, v6.checked).catch((e) => {
      $('#verdict').className = 'error';
      $('#verdict').textContent = e.message;
    });
  });
  d.append(form, el('div', { id: 'verdict' }), el('ol', { id: 'hops' }));
}

async function runTrace(src, dst, proto, port, ipv6) {
  $('#verdict').className = '';
  $('#verdict').textContent = 'tracing…';
  $('#hops').replaceChildren();
  const body = { Source: src, Destination: dst, Protocol: proto, ...(proto !== 'icmp' && port ? { Port: Number(port) } : {}), ...(ipv6 ? { IPv6: true } : {}) };
  const r = await getJson('/api/trace', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  lastTrace = r;
  const v = $('#verdict');
  v.className = r.Verdict.replace(' ', '-');
  v.textContent = `${r.Verdict}: ${r.Reason}`;
  for (const h of r.Hops) {
    const at = h.where !== 'host' ? `[${h.where}] ` : '';
    const li = el('li', {}, h.kind === 'rule' || h.kind === 'policy' ? `${h.direction === 'reply' ? '←' : '→'} ${at}${h.table} ${h.chain}: ${h.verdict}` : `${h.where}: ${h.text}`);
    if (h.meaning) li.append(el('div', { class: 'meaning' }, h.meaning));
    $('#hops').append(li);
  }
  highlight(r);
}

function highlight(r) {
  for (const g of document.querySelectorAll('.trace-src, .trace-dst')) g.classList.remove('trace-src', 'trace-dst', 'delivered', 'dropped', 'refused', 'no-answer', 'no-route');
  for (const p of document.querySelectorAll('path.trace')) p.classList.remove('trace');
  const byName = (n) => topo.containers.find((c) => c.name === n);
  const s = byName(r.Source.name), d = byName(r.Destination.name);
  if (s) {
    document.querySelector(`g[data-id="${s.id}"]`)?.classList.add('trace-src');
    for (const p of document.querySelectorAll(`path[data-container="${s.id}"]`)) p.classList.add('trace');
  }
  if (d) {
    document.querySelector(`g[data-id="${d.id}"]`)?.classList.add('trace-dst', r.Verdict.replace(' ', '-'));
    if (r.Verdict === 'delivered') for (const p of document.querySelectorAll(`path[data-container="${d.id}"]`)) p.classList.add('trace');
  }
}

function follow() {
  const es = new EventSource('/api/events');
  es.addEventListener('change', scheduleRefresh);
  es.addEventListener('open', () => { $('#live').className = ''; scheduleRefresh(); });
  es.addEventListener('error', () => { $('#live').className = 'off'; });
}

refresh().catch(showError);
follow();
