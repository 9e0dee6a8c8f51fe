"""The live `/ui` page: one self-contained HTML document whose script polls the gateway's own JSON views
(`/admin/backends`, `/v1/models`) once a second. No build step, no assets, nothing fetched from elsewhere.
The page holds no data itself; where the admin views need the admin key, open `/ui#key=<admin key>`: the
script sends it as a Bearer token (a URL fragment never reaches the server or its logs)."""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tensormux gateway</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2330; background: #fafbfc; }
 h1 { font-size: 1.3rem; margin: 0 0 .2rem; } h2 { font-size: 1rem; margin: 1.4rem 0 .4rem; }
 table { border-collapse: collapse; width: 100%; background: #fff; }
 th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #e3e6ea; white-space: nowrap; }
 th { font-weight: 600; color: #56606f; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
 .state { padding: .05rem .45rem; border-radius: .6rem; font-size: .8rem; }
 .healthy { background: #d8f5df; } .suspect, .recovering { background: #fff1c2; }
 .unhealthy { background: #fbd5d5; } .draining, .unknown { background: #e6e8ec; }
 #status { color: #56606f; }
</style></head>
<body>
<h1>Tensormux gateway</h1>
<div id="status">connecting&hellip;</div>
<h2>Backends</h2>
<table><thead><tr><th>backend</th><th>state</th><th>routable</th><th>breaker</th><th>models</th>
<th>in flight</th><th>req/s</th><th>served</th><th>failed</th><th>engine running / waiting</th>
<th>KV cache</th><th>prefix hits</th><th title="prompt blocks this gateway's prefix index holds there / the age (blocks
routed there since) up to which it presumes one still cached, as learned from the cached tokens its answers report
(- until learned)">prefix index</th><th title="its TTFTs against a reference GPU replica's, plus the fixed time
of every request there, as learned from its streams (how many)">engine cost</th></tr></thead>
<tbody id="backends"></tbody></table>
<h2>Models</h2>
<table><thead><tr><th>model</th><th>aliases</th><th>context</th><th>backends</th></tr></thead>
<tbody id="models"></tbody></table>
<script>
const esc = s => String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
const pct = x => x === null || x === undefined || x < 0 ? "-" : (100 * x).toFixed(0) + "%";
const key = new URLSearchParams(location.hash.slice(1)).get("key");
const auth = key ? {headers: {Authorization: "Bearer " + key}} : {};
let last = null;
async function refresh() {
  try {
    const [b, m] = await Promise.all([fetch("admin/backends", auth), fetch("v1/models", auth)]);
    const refused = [b, m].find(r => !r.ok);
    if (refused) {
      const error = (await refused.json()).error || {};
      document.getElementById("status").textContent = "refused: " + (error.message || refused.status) +
        (refused.status === 401 ? " (open this page as /ui#key=<admin key>)" : "");
      return;
    }
    const backends = (await b.json()).backends, models = (await m.json()).data, now = performance.now();
    document.getElementById("backends").innerHTML = backends.map(x => {
      const done = x.served + x.failed, prev = last ? last.counts[x.id] : undefined;
      // counts are the whole gateway's; they drop only when a worker is restarted or falls silent: no rate then
      const rate = prev === undefined || done < prev ? "-" : ((done - prev) * 1000 / (now - last.at)).toFixed(1);
      const load = x.engine_load;
      return `<tr><td>${esc(x.id)}</td><td><span class="state ${esc(x.state)}">${esc(x.state)}</span></td>
        <td>${x.routable ? "yes" : "no"}</td><td>${esc(x.breaker)}</td><td>${x.models.map(esc).join(", ")}</td>
        <td class="num">${x.inflight}</td><td class="num">${rate}</td><td class="num">${x.served}</td>
        <td class="num">${x.failed}</td><td class="num">${load ? load.running + " / " + load.waiting : "-"}</td>
        <td class="num">${load ? pct(load.kv_cache_usage) : "-"}</td>
        <td class="num">${load ? pct(load.prefix_cache_hit_rate) : "-"}</td>
        <td class="num">${x.cached_prefix_blocks} / ${x.prefix_capacity_blocks ?? "-"}</td>
        <td class="num">${x.engine_costs.factor.toFixed(2)}x + ${x.engine_costs.overhead_ms.toFixed(1)} ms
          (${x.engine_costs.observations})</td></tr>`;
    }).join("");
    document.getElementById("models").innerHTML = models.map(x => `<tr><td>${esc(x.id)}</td>
      <td>${x.aliases.map(esc).join(", ")}</td><td class="num">${x.context_length || "-"}</td>
      <td>${x.backends.map(y => esc(y.id) + (y.routable ? "" : " (out)")).join(", ")}</td></tr>`).join("");
    last = {at: now, counts: Object.fromEntries(backends.map(x => [x.id, x.served + x.failed]))};
    document.getElementById("status").textContent = "live, updated " + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById("status").textContent = "gateway unreachable: " + e;
  }
}
refresh(); setInterval(refresh, 1000);
</script></body></html>
"""
