"""`handoffs trace html`: one self-contained HTML page for a job's trace.

The page carries its data as JSON in a `<script type="application/json">` tag and renders it with a
little vanilla JS: the handoff tree (a `<details>` per handoff, labelled with its item, its row
saying why a degraded or failed handoff ended so, its tokens, queue time and judge calls; inside:
attempts, checks, verdicts, the router's reasons), a waterfall of every span (handoffs labelled
with their item, checks and queue waits marked as such), cost per subordinate (task kind) and per
model (each attempt charged to the model it called, `charges`), filters for failed / escalated /
degraded handoffs and a text search (both also from the URL fragment:
`page.html#filter=escalated&search=T-007`).
No network: no CDN, no external stylesheet, script, font or image.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from handoffs.tracing._spans import CHECK_SPAN, QUEUE_SPAN
from handoffs.tracing._view import SpanNode, charges, is_handoff, trace_document

__all__ = ["embed_json", "page_data", "render_html", "write_html"]

_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def embed_json(data: Any) -> str:
    """JSON that is safe inside a `<script>` element: no `<`, `>` or `&` survive unescaped, so
    `</script>` or `<!--` in the data cannot end or alter the element. `JSON.parse` reads it back."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in _ESCAPES.items():
        text = text.replace(char, escaped)
    return text


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _flags(h: dict[str, Any]) -> list[str]:
    flags: list[str] = []
    if h["status"] == "failed":
        flags.append("failed")
    if h["escalations"] and h["status"] == "delivered":
        flags.append("escalated")
    if h["degraded"]:
        flags.append("degraded")
    if h.get("simulated"):
        flags.append("simulated")
    return flags


def _costs(rows: dict[str, list[Decimal | int]]) -> list[dict[str, Any]]:
    ordered = sorted(rows.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return [{"name": k, "handoffs": int(n), "cost_usd": str(c)} for k, (c, n) in ordered]


def page_data(job_id: str, roots: list[SpanNode]) -> dict[str, Any]:
    """What the page shows: `trace show --json`'s document plus flags, costs and the waterfall."""
    document = trace_document(job_id, roots)
    handoffs: list[dict[str, Any]] = document["handoffs"]
    for h in handoffs:
        h["flags"] = _flags(h)
    by_kind: dict[str, list[Decimal | int]] = {}
    by_model: dict[str, list[Decimal | int]] = {}
    for h in handoffs:
        shares = [(by_kind, str(h["task_kind"]), _decimal(h["cost_usd"]))]
        shares += [(by_model, model, cost) for model, cost in charges(h).items()]
        for table, key, cost in shares:
            row = table.setdefault(key, [Decimal(0), 0])
            row[0] += cost
            row[1] += 1
    nodes = [n for r in roots for n in r.walk()]
    starts = [n.span.get("start_time_unix_nano") or 0 for n in nodes]
    ends = [n.span.get("end_time_unix_nano") or 0 for n in nodes]
    t0 = min((s for s in starts if s), default=0)
    t1 = max(ends, default=0)
    # the same spans, in the same order, as the document's handoffs
    handoff_nodes = [n for n in nodes if is_handoff(n)]
    assert len(handoff_nodes) == len(handoffs)
    index = {id(n): i for i, n in enumerate(handoff_nodes)}
    spans: list[dict[str, Any]] = []

    def label(node: SpanNode) -> tuple[str, str]:
        """What the waterfall calls a span, and its kind: handoff, check, queue or span."""
        a = node.attributes
        if is_handoff(node):
            item = a.get("handoffs.task.label") or a.get("handoffs.task.id") or ""
            return f"{node.name} {item}".strip(), "handoff"
        if node.name.startswith(CHECK_SPAN + " "):
            verdict = a.get("gen_ai.evaluation.score.label")
            return node.name + (f" {verdict}" if verdict else ""), "check"
        if node.name.startswith(QUEUE_SPAN + " "):
            return node.name + " (waiting for a slot)", "queue"
        if node.name.startswith("invoke_agent check:"):
            return node.name + " (judge call)", "check"
        return node.name, "span"

    def visit(node: SpanNode, depth: int, owner: int | None) -> None:
        start = node.span.get("start_time_unix_nano") or t0
        end = node.span.get("end_time_unix_nano") or start
        name, kind = label(node)
        owner = index.get(id(node), owner)
        spans.append(
            {
                "name": name,
                "kind": kind,
                "depth": depth,
                "start_s": round((start - t0) / 1e9, 6),
                "end_s": round((end - t0) / 1e9, 6),
                "status": node.span.get("status", {}).get("code"),
                "handoff": index.get(id(node)),
                "within": owner,  # the handoff this span is part of (the search finds it by it)
            }
        )
        for child in node.children:
            visit(child, depth + 1, owner)

    for root in roots:
        visit(root, 0, None)
    return {
        "document": document,
        "total_s": round(max(t1 - t0, 0) / 1e9, 6),
        "spans": spans,
        "cost_by_kind": _costs(by_kind),
        "cost_by_model": _costs(by_model),
    }


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}
.hidden{display:none!important}
#filters button{margin-right:.4em;padding:.2em .8em;border:1px solid #888;background:#f4f4f4;border-radius:4px;cursor:pointer}
#filters button.active{background:#246;color:#fff}
details.handoff{border-left:4px solid #9c9;margin:.2em 0;padding:.1em .5em}
details.handoff.escalated{border-color:#39c}details.handoff.degraded{border-color:#db3}
details.handoff.failed{border-color:#c33}
details.handoff summary{cursor:pointer}
.mark-ok{color:#282}.mark-bad{color:#c33}
table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid #ccc;padding:.15em .6em;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
#waterfall{position:relative;border:1px solid #ddd}
.wrow{position:relative;height:16px;font-size:11px;white-space:nowrap}
.wrow:nth-child(odd){background:#fafafa}
.wlabel{position:absolute;left:0;width:34%;overflow:hidden;text-overflow:ellipsis}
.wtrack{position:absolute;left:35%;right:0;top:0;bottom:0}
.bar{position:absolute;top:3px;height:10px;min-width:1px;background:#8ab}
.bar.handoff{background:#6a6}.bar.escalated{background:#39c}.bar.degraded{background:#db3}
.bar.failed,.bar.ERROR{background:#c33}
.bar.handoff.degraded{background:#db3}
.bar.check{background:#a7c}.bar.queue{background:#ccc;border:1px dashed #888}
.wlabel.check{color:#639}.wlabel.queue{color:#777;font-style:italic}
#search{margin-left:1em;padding:.2em .5em;width:18em}
.cause{color:#a60;font-weight:bold}
.reasons li{font-family:ui-monospace,monospace;font-size:12px}
"""

_JS = """
(function(){
var data=JSON.parse(document.getElementById('trace-data').textContent);
var doc=data.document;
function el(tag,cls,text){var e=document.createElement(tag);if(cls)e.className=cls;
 if(text!==undefined&&text!==null)e.textContent=String(text);return e;}
function list(title,items){var d=el('div');d.appendChild(el('strong',null,title));
 var ul=el('ul',title==='router reasons'?'reasons':null);
 (items||[]).forEach(function(x){ul.appendChild(el('li',null,x));});d.appendChild(ul);return d;}
document.getElementById('title').textContent=(doc.job?'job '+doc.job:'trace')+' ('+doc.job_id+')'+
 (doc.gauntlet_attack?' \\u00b7 Gauntlet: '+doc.gauntlet_attack:'');
document.getElementById('summary').textContent=[doc.status,'$'+doc.cost_usd+' total',
 doc.orchestrator_cost_usd!==null?'$'+doc.orchestrator_cost_usd+' orchestrator':null,
 doc.handoffs.length+' handoffs',doc.spans+' spans',(doc.duration_s||0).toFixed(2)+'s']
 .filter(function(x){return x;}).join(' \\u00b7 ');
var tree=document.getElementById('tree');
doc.handoffs.forEach(function(h,i){
 var d=el('details','handoff row '+h.flags.join(' '));d.id='handoff-'+i;
 d.setAttribute('data-flags',h.flags.join(' '));
 var ok=h.status==='delivered';var s=el('summary');
 s.appendChild(el('span',ok?'mark-ok':'mark-bad',ok?'\\u2713 ':'\\u2717 '));
 var model=h.model||h.status;if(h.escalations&&ok)model+=' \\u2191'+h.escalations;
 s.appendChild(el('span',null,[h.task_kind+' '+(h.label||h.task_id),model,
  'route '+(h.route||[]).join('\\u2192'),h.attempts+' attempt'+(h.attempts===1?'':'s'),
  (h.input_tokens||0)+'/'+(h.output_tokens||0)+' tok']
  .concat(h.cache_read_tokens?[h.cache_read_tokens+' tok cached']:[])
  .concat(h.judge_calls?[h.judge_calls+' judge call'+(h.judge_calls===1?'':'s')]:[])
  .concat(h.queue_s?['queued '+h.queue_s.toFixed(2)+'s']:[])
  .concat([(h.latency_s||0).toFixed(2)+'s','$'+h.cost_usd]).concat(h.flags).join(' \\u00b7 ')));
 if(h.cause&&h.status!=='delivered')s.appendChild(el('span','cause',' \\u00b7 '+h.status+': '+h.cause));
 d.appendChild(s);
 d.appendChild(el('div',null,'status '+h.status+(h.cause?' ('+h.cause+')':'')+' \\u00b7 risk '+
  h.risk+' \\u00b7 provider '+(h.provider||'-')+' \\u00b7 tier '+(h.tier||'-')+
  ' \\u00b7 budget left $'+h.budget_left_usd));
 if((h.breakers||[]).length)d.appendChild(el('div','breakers','breakers when routed: '+
  h.breakers.join(', ')));
 var t=el('table');var hr=el('tr');
 ['attempt','model','outcome','fault','cost','checks'].forEach(function(c){hr.appendChild(el('th',null,c));});
 t.appendChild(hr);var costs=h.attempt_costs_usd||[];
 (h.outcomes||[]).forEach(function(o,n){var tr=el('tr');tr.appendChild(el('td',null,n+1));
  tr.appendChild(el('td',null,(h.attempt_models||[])[n]||'-'));tr.appendChild(el('td',null,o));
  tr.appendChild(el('td',null,(h.faults||[])[n]||''));
  tr.appendChild(el('td','num',n<costs.length?'$'+costs[n]:'-'));
  var ev=(h.evaluations||[]).filter(function(e){return e['handoffs.attempt']===n;});
  var ck=(h.checks||[]).filter(function(c){return c.attempt===n;});
  tr.appendChild(el('td',null,ck.length?ck.map(function(c){return c.name+' '+c.label+
   (c.calls?' (judge call'+(c.model?' on '+c.model:'')+', '+c.duration_s.toFixed(2)+'s)':'');}).join(', '):
   ev.map(function(e){return e['gen_ai.evaluation.name']+' '+
   e['gen_ai.evaluation.score.label'];}).join(', ')));t.appendChild(tr);});
 d.appendChild(t);d.appendChild(list('verdicts',h.verdicts));
 d.appendChild(list('router reasons',h.route_reasons));tree.appendChild(d);});
function costs(id,rows){var t=document.getElementById(id);rows.forEach(function(r){
 var tr=el('tr');tr.appendChild(el('td',null,r.name));tr.appendChild(el('td','num',r.handoffs));
 tr.appendChild(el('td','num','$'+r.cost_usd));t.appendChild(tr);});}
costs('cost-kind',data.cost_by_kind);costs('cost-model',data.cost_by_model);
var wf=document.getElementById('waterfall');var total=data.total_s||1;
data.spans.forEach(function(s){var h=s.handoff!==null?doc.handoffs[s.handoff]:null;
 var flags=h?h.flags:[];var r=el('div','wrow row '+flags.join(' '));
 r.setAttribute('data-flags',flags.join(' '));
 var w=s.within!==null&&s.within!==undefined?doc.handoffs[s.within]:null;
 if(w)r.setAttribute('data-item',w.task_kind+' '+(w.label||w.task_id));
 var l=el('div','wlabel '+(s.kind||''),s.name);l.style.paddingLeft=(s.depth*8)+'px';
 l.title=s.name+' '+(s.end_s-s.start_s).toFixed(3)+'s';r.appendChild(l);
 var track=el('div','wtrack');
 var b=el('div','bar '+(h?'handoff ':'')+(s.kind==='check'||s.kind==='queue'?s.kind+' ':'')+
  flags.join(' ')+' '+(s.status||''));
 b.style.left=(100*s.start_s/total)+'%';b.style.width=(100*(s.end_s-s.start_s)/total)+'%';
 b.title=l.title;
 if(h){b.style.cursor='pointer';b.addEventListener('click',function(){
  var d=document.getElementById('handoff-'+s.handoff);d.open=true;d.scrollIntoView();});}
 track.appendChild(b);r.appendChild(track);wf.appendChild(r);});
var active=null;var search=document.getElementById('search');
function apply(f){active=f;document.querySelectorAll('#filters button').forEach(function(b){
  b.classList.toggle('active',b.getAttribute('data-filter')===(f||'all'));});
 var q=(search.value||'').trim().toLowerCase();
 document.querySelectorAll('.row').forEach(function(r){
  var flags=(r.getAttribute('data-flags')||'').split(' ');
  var text=(r.textContent+' '+(r.getAttribute('data-item')||'')).toLowerCase();
  var show=(!f||flags.indexOf(f)>=0)&&(!q||text.indexOf(q)>=0);
  r.classList.toggle('hidden',!show);
  if(f&&show&&r.tagName==='DETAILS')r.open=true;});
 document.body.setAttribute('data-filter',f||'all');}
function remember(){var parts=[];if(active)parts.push('filter='+active);
 if(search.value)parts.push('search='+encodeURIComponent(search.value));
 history.replaceState(null,'',parts.length?'#'+parts.join('&'):'#');}
search.addEventListener('input',function(){apply(active);remember();});
document.querySelectorAll('#filters button').forEach(function(b){b.addEventListener('click',
 function(){var f=b.getAttribute('data-filter');f=(f==='all'||f===active)?null:f;
  apply(f);remember();});});
var m=/filter=(failed|escalated|degraded)/.exec(location.hash);
var q=/search=([^&]*)/.exec(location.hash);if(q)search.value=decodeURIComponent(q[1]);
apply(m?m[1]:null);
document.body.setAttribute('data-rendered','yes');
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>handoffs trace</title>
<style>{css}</style></head>
<body>
<h1 id="title">job</h1>
<p id="summary"></p>
<div id="filters">filter:
<button data-filter="all">all</button><button data-filter="failed">failed</button>
<button data-filter="escalated">escalated</button><button data-filter="degraded">degraded</button>
<input id="search" type="search" placeholder="search: item, model, check, cause...">
</div>
<h2>Cost</h2>
<table id="cost-kind"><tr><th>subordinate (task kind)</th><th>handoffs</th><th>cost</th></tr></table>
<table id="cost-model"><tr><th>model (charged per attempt)</th><th>handoffs</th><th>cost</th></tr></table>
<h2>Handoffs</h2>
<div id="tree"></div>
<h2>Timeline</h2>
<div id="waterfall"></div>
<script type="application/json" id="trace-data">{data}</script>
<script>{js}</script>
</body></html>
"""


def render_html(job_id: str, roots: list[SpanNode]) -> str:
    """The whole page for one job's trace."""
    data = embed_json(page_data(job_id, roots))
    return _PAGE.replace("{css}", _CSS).replace("{js}", _JS).replace("{data}", data)


def write_html(path: Path, html: str) -> None:
    """Write `html` to `path` through a temporary file in the same folder, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
