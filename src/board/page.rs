//! `/status` as HTML: one page with its style and script inline (no other request but
//! `/status.json`, no external asset, font or CDN), under a strict Content-Security-Policy
//! that allows exactly that style and that script by their SHA-256 hashes.
//!
//! The page is rendered here in full, so it works with scripts off (a `<noscript>` refresh
//! reloads it every `status.refresh`); with scripts on, a small script polls `/status.json`
//! and renders the same markup from it, so it updates without a reload. The two renderers
//! write the same elements and classes (a browser test compares them). Tiles are a list of
//! text: the state's name is written out, colour only repeats it. An update keeps the
//! keyboard focus on the link it was on, and rewrites the summary (a live region) only when
//! it changed, so a screen reader hears changes, not every refresh.

use std::fmt::Write;
use std::sync::LazyLock;

use base64::Engine;

use super::{duration_text, Board, Component, MetricBlock, Tone};

/// Escapes text for HTML and XML (the landing page, the status board and its badges).
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "*{box-sizing:border-box}\
body{margin:0;padding:1rem clamp(.5rem,2vw,2rem);background:var(--bg);color:var(--fg);font:15px/1.4 system-ui,sans-serif}\
@media(min-width:2400px){body{font-size:24px}}\
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;margin:1.2em 0 .4em}h3{font-size:1.05em;margin:.8em 0 .3em}\
p{margin:.3em 0}small,.mute{color:var(--mute)}a{color:inherit}:focus-visible{outline:2px solid var(--fg);outline-offset:2px}\
.t-ok{--c:var(--ok)}.t-minor{--c:var(--minor)}.t-major{--c:var(--major)}.t-critical{--c:var(--critical)}.t-unknown{--c:var(--unknown)}\
.c,.st{color:var(--c);font-weight:700}.c{margin-right:.8em}.st{text-transform:uppercase;letter-spacing:.03em;white-space:nowrap}\
ul.tiles,ul.hl{list-style:none;margin:0;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,16em),1fr));gap:.5em}\
.tile,ul.hl li{background:var(--card);border:1px solid var(--line);border-radius:.3em;padding:.4em .6em;min-width:0}\
.tile{border-left:.45em solid var(--c)}.h{display:flex;justify-content:space-between;gap:.5em}.n{font-weight:600;overflow-wrap:anywhere}\
svg.tl{display:block;width:100%;height:.6em;margin:.3em 0;background:var(--bg)}svg.tl rect{fill:var(--c)}\
svg.spark{display:block;width:100%;height:2em;color:var(--fg)}polyline{fill:none;stroke:currentColor;stroke-width:1.5;vector-effect:non-scaling-stroke}\
.err{color:var(--critical);overflow-wrap:anywhere}.links{font-size:.9em}.stale{color:var(--critical)}";

const SCRIPT: &str = r#""use strict";(()=>{
const R=1000*+document.body.dataset.refresh,$=i=>document.getElementById(i);
const e=t=>String(t).replace(/[&<>"']/g,c=>"&#"+c.charCodeAt(0)+";");
const tone=(l,n)=>l>=n?"unknown":l==0?"ok":l+1==n?"critical":l*2<n?"minor":"major";
const dur=s=>{const d=Math.floor(s/86400),h=Math.floor(s/3600)%24,m=Math.floor(s/60)%60;s%=60;return d?d+"d "+h+"h":h?h+"h "+m+"m":m?m+"m "+s+"s":s+"s"};
const pct=(x,st)=>{if(!x.covered_seconds)return"–";const v=x.states.find(v=>v.state==st);return((v?v.fraction:0)*100).toFixed(1)+"%"};
const href=u=>u[0]=="/"?"."+u:u;
const num=v=>v==null?"–":Number.isInteger(v)&&Math.abs(v)<1e15?String(v):v.toFixed(3).replace(/\.?0+$/,"");
const time=t=>new Date(t*1000).toISOString().slice(11,19)+" UTC";
function tile(c,m,j){
const n=m.states.length-1,w=j.timeline_seconds,s0=j.now-w;let tl="";
for(const g of c.timeline){if(g.state==null)continue;let i=m.states.indexOf(g.state);if(i<0)i=n;
const x=Math.floor((g.from-s0)*1000/w),x2=Math.floor((g.to-s0)*1000/w);
tl+=`<rect x="${x}" width="${Math.max(1,x2-x)}" height="8" class="t-${tone(i,n)}"/>`}
let h=`<li class="tile t-${c.tone}"><div class="h"><span class="n" title="${e(c.id)}">${e(c.name)}</span> <span class="st">${e(c.state)}</span></div>`
+`<div class="mute">${c.since==null?"no history yet":"for "+dur(Math.max(0,j.now-c.since))}</div>`
+`<svg class="tl" viewBox="0 0 1000 8" preserveAspectRatio="none" aria-hidden="true">${tl}</svg>`
+`<div class="mute">${e(m.states[0])} ${pct(c.share.day,m.states[0])} 24h · ${pct(c.share.week,m.states[0])} 7d</div>`;
for(const s of m.sources)if(s.up===false)h+=`<div class="err">source ${e(s.source)}: ${e(s.error||"failing")}</div>`;
return h+`<div class="links">${c.links.concat([{title:"badge",url:c.badge}]).map(l=>`<a href="${e(href(l.url))}">${e(l.title)}</a>`).join(" · ")}</div></li>`}
function spark(p){if(p.length<2)return"";const t0=p[0][0],t1=p[p.length-1][0],v=p.map(x=>x[1]).filter(x=>x!=null),lo=Math.min(...v),hi=Math.max(...v);
return`<svg class="spark" viewBox="0 0 100 20" preserveAspectRatio="none" aria-hidden="true"><polyline points="${p.filter(x=>x[1]!=null).map(x=>((x[0]-t0)*100/Math.max(1,t1-t0)).toFixed(1)+","+(hi>lo?19-(x[1]-lo)*18/(hi-lo):10).toFixed(1)).join(" ")}"/></svg>`}
function render(j){
let total=0;for(const c of j.summary)total+=c.count;
const sm=$("summary"),st=total?`<b>${total} component${total==1?"":"s"}:</b> `+j.summary.map(c=>`<span class="c t-${c.tone}">${c.count} ${e(c.state)}</span>`).join(""):"No components yet.";
if(sm.innerHTML!==st)sm.innerHTML=st;let b="";
if(j.headlines.length){b+=`<section aria-label="Headlines"><ul class="hl">`;
for(const h of j.headlines)for(const s of h.series){const l=Object.values(s.labels).join(" · ");
b+=`<li><span class="mute">${e(h.title)}${l?" "+e(l):""}</span> <b>${num(s.value)}</b>${spark(s.samples)}</li>`}
b+=`</ul></section>`}
for(const g of j.groups){b+=`<section>`;const hn=g.group?"h3":"h2";
if(g.group)b+=`<h2><span class="mute">${e(g.group.label)}</span> ${e(g.group.value)} <span class="c t-${g.verdict.tone}">${e(g.verdict.state)}</span></h2>`;
for(const m of g.metrics)b+=`<${hn}>${e(m.metric)} <small>${e(m.help)}</small></${hn}><ul class="tiles">${m.components.map(c=>tile(c,m,j)).join("")}</ul>`;
b+=`</section>`}
const bd=$("board"),a=document.activeElement,li=a&&bd.contains(a)&&a.closest("li.tile"),fk=li&&[li.querySelector(".n").title,a.textContent];
bd.innerHTML=b;if(fk)for(const t of bd.querySelectorAll("li.tile"))if(t.querySelector(".n").title===fk[0])for(const l of t.querySelectorAll("a"))if(l.textContent===fk[1])l.focus();
const u=$("updated");u.textContent=time(j.now);u.className="";document.title=j.title+" — "+j.overall.state}
async function poll(){try{const r=await fetch("status.json",{cache:"no-store",credentials:"same-origin"});if(!r.ok)throw new Error("HTTP "+r.status);render(await r.json())}
catch(x){const u=$("updated");u.className="stale";u.textContent=u.textContent.replace(/ \(.*$/,"")+" (cannot update: "+x.message+")"}setTimeout(poll,R)}
setTimeout(poll,R)})();"#;

/// The page's whole stylesheet: the palette's variables, then the rules.
static STYLE: LazyLock<String> = LazyLock::new(|| super::palette::css_variables() + CSS);

/// The Content-Security-Policy of `/status`: nothing but this page's own style and script
/// (by hash), its JSON and images from this origin or inline (`data:`). Framing is left to
/// the web config (`X-Frame-Options`, or its policy's `frame-ancestors`, which is added):
/// wall screens often show the page in a frame.
pub static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = |text: &str| {
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    };
    format!(
        "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'",
        hash(SCRIPT),
        hash(&STYLE)
    )
});

fn href(url: &str) -> String {
    if url.starts_with('/') {
        format!(".{url}")
    } else {
        url.to_owned()
    }
}

/// A number as the page shows it: integers whole, others to three decimals at most.
fn number(v: f64) -> String {
    if !v.is_finite() {
        "–".to_owned()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let t = format!("{v:.3}");
        t.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn percent(share: &super::history::Share, state: &str) -> String {
    if share.covered_seconds == 0 {
        return "–".to_owned();
    }
    let f = share
        .states
        .iter()
        .find(|s| s.state == state)
        .map_or(0.0, |s| s.fraction);
    format!("{:.1}%", f * 100.0)
}

/// The time of day of unix second `t`, UTC.
pub fn time_of_day(t: u64) -> String {
    format!("{:02}:{:02}:{:02} UTC", t / 3600 % 24, t / 60 % 60, t % 60)
}

fn tile(h: &mut String, c: &Component, m: &MetricBlock, board: &Board) {
    let n = m.states.len().saturating_sub(1);
    let w = board.timeline_seconds.max(1);
    let start = board.now.saturating_sub(w);
    let mut tl = String::new();
    for g in &c.timeline {
        let Some(state) = &g.state else { continue };
        let i = m.states.iter().position(|s| s == state).unwrap_or(n);
        let x = (g.from.saturating_sub(start)) * 1000 / w;
        let x2 = (g.to.saturating_sub(start)) * 1000 / w;
        let _ = write!(
            tl,
            "<rect x=\"{x}\" width=\"{}\" height=\"8\" class=\"t-{}\"/>",
            (x2.saturating_sub(x)).max(1),
            Tone::of(i, n).as_str()
        );
    }
    let best = m.states.first().map(String::as_str).unwrap_or("");
    let _ = write!(
        h,
        "<li class=\"tile t-{}\"><div class=\"h\"><span class=\"n\" title=\"{}\">{}</span> <span class=\"st\">{}</span></div>\
<div class=\"mute\">{}</div>\
<svg class=\"tl\" viewBox=\"0 0 1000 8\" preserveAspectRatio=\"none\" aria-hidden=\"true\">{tl}</svg>\
<div class=\"mute\">{} {} 24h · {} 7d</div>",
        c.tone,
        esc(&c.id),
        esc(&c.name),
        esc(&c.state),
        match c.since {
            None => "no history yet".to_owned(),
            Some(s) => format!("for {}", duration_text(board.now.saturating_sub(s))),
        },
        esc(best),
        percent(&c.share.day, best),
        percent(&c.share.week, best),
    );
    for s in &m.sources {
        if s.up == Some(false) {
            let _ = write!(
                h,
                "<div class=\"err\">source {}: {}</div>",
                esc(&s.source),
                esc(s.error.as_deref().unwrap_or("failing"))
            );
        }
    }
    let links: Vec<String> = c
        .links
        .iter()
        .map(|l| (l.title.as_str(), l.url.as_str()))
        .chain([("badge", c.badge.as_str())])
        .map(|(t, u)| format!("<a href=\"{}\">{}</a>", esc(&href(u)), esc(t)))
        .collect();
    let _ = write!(h, "<div class=\"links\">{}</div></li>", links.join(" · "));
}

fn spark(samples: &[(u64, f64)]) -> String {
    let points: Vec<(u64, f64)> = samples
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    if samples.len() < 2 {
        return String::new();
    }
    let (t0, t1) = (samples[0].0, samples[samples.len() - 1].0);
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let pts: Vec<String> = points
        .iter()
        .map(|(t, v)| {
            let x = (t - t0) as f64 * 100.0 / (t1.saturating_sub(t0)).max(1) as f64;
            let y = if hi > lo {
                19.0 - (v - lo) * 18.0 / (hi - lo)
            } else {
                10.0
            };
            format!("{x:.1},{y:.1}")
        })
        .collect();
    format!(
        "<svg class=\"spark\" viewBox=\"0 0 100 20\" preserveAspectRatio=\"none\" aria-hidden=\"true\"><polyline points=\"{}\"/></svg>",
        pts.join(" ")
    )
}

/// The summary line's inner HTML.
pub fn summary(board: &Board) -> String {
    let total: usize = board.summary.iter().map(|c| c.count).sum();
    if total == 0 {
        return "No components yet.".to_owned();
    }
    let mut h = format!(
        "<b>{total} component{}:</b> ",
        if total == 1 { "" } else { "s" }
    );
    for c in &board.summary {
        let _ = write!(
            h,
            "<span class=\"c t-{}\">{} {}</span>",
            c.tone,
            c.count,
            esc(&c.state)
        );
    }
    h
}

/// The board's inner HTML: headlines, then the groups.
pub fn board_html(board: &Board) -> String {
    let mut b = String::with_capacity(4096);
    if !board.headlines.is_empty() {
        b.push_str("<section aria-label=\"Headlines\"><ul class=\"hl\">");
        for hl in &board.headlines {
            for s in &hl.series {
                let labels: Vec<&str> = s.labels.values().map(String::as_str).collect();
                let labels = labels.join(" · ");
                let _ = write!(
                    b,
                    "<li><span class=\"mute\">{}{}</span> <b>{}</b>{}</li>",
                    esc(&hl.title),
                    if labels.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", esc(&labels))
                    },
                    number(s.value),
                    spark(&s.samples)
                );
            }
        }
        b.push_str("</ul></section>");
    }
    for g in &board.groups {
        b.push_str("<section>");
        let hn = if g.group.is_some() { "h3" } else { "h2" };
        if let Some(key) = &g.group {
            let _ = write!(
                b,
                "<h2><span class=\"mute\">{}</span> {} <span class=\"c t-{}\">{}</span></h2>",
                esc(&key.label),
                esc(&key.value),
                g.verdict.tone,
                esc(&g.verdict.state)
            );
        }
        for m in &g.metrics {
            let _ = write!(
                b,
                "<{hn}>{} <small>{}</small></{hn}><ul class=\"tiles\">",
                esc(&m.metric),
                esc(&m.help)
            );
            for c in &m.components {
                tile(&mut b, c, m, board);
            }
            b.push_str("</ul>");
        }
        b.push_str("</section>");
    }
    b
}

/// The whole page.
pub fn render(board: &Board) -> String {
    let refresh = board.refresh_seconds.max(1.0).round() as u64;
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><meta name=\"color-scheme\" content=\"light dark\">\
<title>{title} — {overall}</title><link rel=\"icon\" href=\"data:,\">\
<noscript><meta http-equiv=\"refresh\" content=\"{refresh}\"></noscript><style>{style}</style></head>\
<body data-refresh=\"{refresh}\"><header><h1>{title}</h1><p id=\"summary\" aria-live=\"polite\">{summary}</p>\
<p class=\"mute\">Updated <span id=\"updated\">{updated}</span> · every {refresh}s · \
<a href=\"./\">exporter</a> · <a href=\"status.json\">JSON</a> · <a href=\"status/badge.svg\">badge</a></p></header>\
<main id=\"board\">{board}</main><script>{SCRIPT}</script></body></html>\n",
        title = esc(&board.title),
        overall = esc(&board.overall.state),
        style = *STYLE,
        summary = summary(board),
        updated = time_of_day(board.now),
        board = board_html(board),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_times_as_the_script_writes_them() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(1.0 / 3.0), "0.333");
        assert_eq!(number(f64::NAN), "–");
        assert_eq!(time_of_day(86_400 + 3661), "01:01:01 UTC");
    }

    /// The policy names the hashes of exactly what the page inlines, and nothing external.
    #[test]
    fn the_policy_allows_the_inline_style_and_script_by_hash() {
        let csp = &*CSP;
        assert!(
            csp.starts_with("default-src 'none'; script-src 'sha256-"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(!csp.contains("http"), "{csp}");
    }
}
