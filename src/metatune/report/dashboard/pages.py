"""The dashboard's two pages. They are static shells: their scripts poll the JSON endpoints and
draw with Plotly (served by the dashboard itself, so nothing comes from the internet). Every text
from a study goes into the page as text (`textContent`), never as markup.
"""

from __future__ import annotations

import html
import json

__all__ = ["index_page", "study_page"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #222; background: #f6f7f9; }
header { background: #1f2937; color: #fff; padding: 14px 28px; }
header h1 { margin: 0; font-size: 20px; } header a { color: #93c5fd; }
header p { margin: 4px 0 0; color: #cbd5e1; font-size: 13px; }
main { padding: 12px 28px 40px; max-width: 1320px; }
section { background: #fff; border-radius: 8px; padding: 12px 16px; margin: 12px 0;
          box-shadow: 0 1px 2px rgba(0,0,0,.08); }
section h2 { font-size: 16px; margin: 0 0 4px; }
p.caption { color: #555; font-size: 13px; margin: 0 0 6px; }
table { border-collapse: collapse; font-size: 13px; }
td, th { padding: 4px 10px; border-bottom: 1px solid #e5e7eb; text-align: left;
         vertical-align: top; }
th { background: #f3f4f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 12px; }
.grid section { margin: 0; }
.s-complete, .s-idle { color: #1f77b4; } .s-failed { color: #d62728; }
.s-running { color: #ff7f0e; font-weight: 600; } .s-empty, .s-pruned { color: #7f7f7f; }
#status { font-size: 12px; color: #cbd5e1; } .err { color: #fca5a5; }
#trials { overflow-x: auto; }
button, select { font-size: 13px; margin-right: 6px; }
"""

_COMMON_JS = """
function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text === null || text === undefined ? '-' : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}
function fmt(v) {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toPrecision(6);
  return String(v);
}
function setStatus(text, bad) {
  const el = document.getElementById('status');
  el.textContent = text;
  el.className = bad ? 'err' : '';
}
"""


def _shell(title: str, body: str, script: str, plotly: bool) -> str:
    lib = "<script src='static/plotly.min.js'></script>" if plotly else ""
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<style>{_CSS}</style>{lib}</head><body>{body}"
        f"<script>{_COMMON_JS}{script}</script></body></html>\n"
    )


def _js_value(value: object) -> str:
    """`value` as a JavaScript literal that cannot end the script element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def index_page(poll_seconds: float) -> str:
    """The list of studies: state, trial counts and best value, refreshed every poll."""
    body = """
<header><h1>metatune dashboard</h1><p>Studies in this storage (read-only).
<span id="status">loading...</span></p></header>
<main><section><h2>Studies</h2>
<table id="studies"><thead><tr><th>study</th><th>state</th><th>trials</th><th>complete</th>
<th>pruned</th><th>failed</th><th>running</th><th>best value</th><th>best #</th><th>direction</th>
<th>optimizer</th></tr></thead><tbody></tbody></table>
<p id="none" class="caption" hidden>No studies in this storage yet.</p></section></main>
"""
    script = f"""
const POLL = {float(poll_seconds) * 1000};
async function refresh() {{
  try {{
    const r = await fetch('api/studies?wait=0');
    const d = await r.json();
    let reading = false;
    const tbody = document.querySelector('#studies tbody');
    tbody.replaceChildren();
    for (const s of d.studies) {{
      const tr = document.createElement('tr');
      const td = document.createElement('td');
      const a = document.createElement('a');
      a.href = 'study?name=' + encodeURIComponent(s.name);
      a.textContent = s.name;
      td.appendChild(a); tr.appendChild(td);
      cell(tr, s.state === 'reading' ? 'reading...' : s.state, 's-' + s.state);
      const c = s.counts || {{}};
      reading = reading || s.state === 'reading';
      cell(tr, s.n_trials, 'num'); cell(tr, c.complete, 'num'); cell(tr, c.pruned, 'num');
      cell(tr, c.failed, 'num'); cell(tr, c.running, 'num');
      if (s.directions) {{  // several objectives: no best value, the Pareto front's size
        cell(tr, 'Pareto front: ' + s.n_pareto, 'num'); cell(tr, '-', 'num');
        cell(tr, s.directions.join(', '));
      }} else {{
        cell(tr, fmt(s.best_value), 'num'); cell(tr, s.best_number, 'num');
        cell(tr, s.direction);
      }}
      cell(tr, s.optimizer);
      tbody.appendChild(tr);
    }}
    document.getElementById('none').hidden = d.studies.length > 0;
    setStatus('updated ' + new Date().toLocaleTimeString() + ', refreshing every ' + POLL / 1000 + ' s');
    setTimeout(refresh, reading ? Math.min(POLL, 300) : POLL);  // soon while still reading
  }} catch (e) {{
    setStatus('cannot reach the dashboard server: ' + e, true);
    setTimeout(refresh, POLL);
  }}
}}
refresh();
"""
    return _shell("metatune dashboard", body, script, plotly=False)


def study_page(name: str, poll_seconds: float, *, missing: bool = False) -> str:
    """One study: summary, figures (redrawn when the study changes) and a paged trials table."""
    if missing:
        body = (
            "<header><h1><a href='.'>metatune dashboard</a></h1></header><main><section>"
            f"<h2>No study named {html.escape(repr(name))}</h2><p><a href='.'>All studies</a>"
            "</p></section></main>"
        )
        return _shell("metatune: no such study", body, "", plotly=False)
    body = f"""
<header><h1><a href=".">metatune</a> / <span id="title">{html.escape(name)}</span></h1>
<p><span id="status">loading...</span></p></header>
<main>
<section id="summary"><h2>Summary</h2><table><tbody></tbody></table></section>
<div id="figures" class="grid"></div>
<section id="trials"><h2>Trials</h2>
<p><label>sort <select id="sort"><option value="number">newest first</option>
<option value="value">best first</option></select></label>
<label>state <select id="state"><option value="">any</option><option>complete</option>
<option>pruned</option><option>failed</option><option>running</option></select></label>
<button id="prev">previous</button><button id="next">next</button>
<span id="page" class="caption"></span></p>
<table><thead></thead><tbody></tbody></table></section>
</main>
"""
    script = f"""
const NAME = {_js_value(name)};
const POLL = {float(poll_seconds) * 1000};
const PER_PAGE = 50;
let version = null, page = 0, total = 0;
const q = (extra) => '?name=' + encodeURIComponent(NAME) + (extra || '');

function renderSummary(rows) {{
  const tbody = document.querySelector('#summary tbody');
  tbody.replaceChildren();
  for (const [k, v] of rows) {{
    const tr = document.createElement('tr');
    cell(tr, k); cell(tr, v);
    tbody.appendChild(tr);
  }}
}}

async function renderFigures(figures) {{
  const box = document.getElementById('figures');
  const keep = new Set(figures.map(f => 'sec-' + f.key));
  for (const el of Array.from(box.children)) if (!keep.has(el.id)) el.remove();
  let prev = null;
  for (const f of figures) {{
    let sec = document.getElementById('sec-' + f.key);
    if (!sec) {{
      sec = document.createElement('section');
      sec.id = 'sec-' + f.key;
      const h = document.createElement('h2'); h.textContent = f.title;
      const p = document.createElement('p'); p.className = 'caption'; p.textContent = f.caption;
      const div = document.createElement('div'); div.id = 'fig-' + f.key;
      sec.append(h, p, div);
      if (prev) prev.after(sec); else box.prepend(sec);
    }}
    prev = sec;
  }}
  // Drawn once every section is in place, so each plot takes its own cell's width; one at a
  // time, letting the browser paint in between, so the first plots show while the rest draw.
  for (const f of figures) {{
    if (f.deferred) continue;
    const layout = Object.assign({{}}, f.figure.layout, {{autosize: true}});
    await Plotly.react('fig-' + f.key, f.figure.data, layout, {{displaylogo: false, responsive: true}});
    await new Promise(r => setTimeout(r, 0));
  }}
}}

async function loadImportance() {{
  const div = document.getElementById('fig-importance');
  if (!div) return;
  const r = await fetch('api/importance' + q());
  const d = await r.json();
  if (!d.figure) {{ div.textContent = 'Needs more completed trials.'; return; }}
  const f = d.figure.figure;
  const layout = Object.assign({{}}, f.layout, {{autosize: true}});
  Plotly.react(div, f.data, layout, {{displaylogo: false, responsive: true}});
}}

async function loadTrials() {{
  const sort = document.getElementById('sort').value;
  const state = document.getElementById('state').value;
  const r = await fetch('api/trials' + q('&page=' + page + '&per_page=' + PER_PAGE +
                        '&sort=' + sort + (state ? '&state=' + state : '')));
  const d = await r.json();
  total = d.total;
  const rows = d.rows;
  const cols = rows.length ? Object.keys(rows[0]).filter(c => c !== 'started_at') : [];
  const thead = document.querySelector('#trials thead');
  thead.replaceChildren();
  const htr = document.createElement('tr');
  for (const c of cols) {{ const th = document.createElement('th'); th.textContent = c; htr.appendChild(th); }}
  thead.appendChild(htr);
  const tbody = document.querySelector('#trials tbody');
  tbody.replaceChildren();
  for (const row of rows) {{
    const tr = document.createElement('tr');
    for (const c of cols) {{
      const v = row[c];
      cell(tr, fmt(v), c === 'state' ? 's-' + v : (typeof v === 'number' ? 'num' : ''));
    }}
    tbody.appendChild(tr);
  }}
  const pages = Math.max(1, Math.ceil(total / PER_PAGE));
  document.getElementById('page').textContent =
    'page ' + (page + 1) + ' of ' + pages + ' (' + total + ' trials)';
  document.getElementById('prev').disabled = page === 0;
  document.getElementById('next').disabled = page + 1 >= pages;
}}

async function poll() {{
  try {{
    const r = await fetch('api/study' + q(version ? '&version=' + encodeURIComponent(version) : ''));
    const d = await r.json();
    if (d.error) throw new Error(d.error);
    if (d.changed) {{
      version = d.version;
      renderSummary(d.summary);
      await renderFigures(d.figures);
      await loadTrials();
      await loadImportance();
    }}
    setStatus('updated ' + new Date().toLocaleTimeString() + ', checking every ' + POLL / 1000 + ' s');
  }} catch (e) {{ setStatus('cannot reach the dashboard server: ' + e, true); }}
  setTimeout(poll, POLL);
}}
document.getElementById('prev').onclick = () => {{ page = Math.max(0, page - 1); loadTrials(); }};
document.getElementById('next').onclick = () => {{ page += 1; loadTrials(); }};
document.getElementById('sort').onchange = () => {{ page = 0; loadTrials(); }};
document.getElementById('state').onchange = () => {{ page = 0; loadTrials(); }};
poll();
"""
    return _shell(f"metatune: {name}", body, script, plotly=True)
