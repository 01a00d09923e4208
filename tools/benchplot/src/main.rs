//! benchplot: charts the serving bench's `BENCH` lines as a PNG.
//!
//! `benchplot [INPUT] OUTPUT.png` reads `BENCH serving_<actor>_<mode>_c<conc>_<metric> <value>` lines from INPUT
//! (or stdin; other lines are ignored) and draws two panels of grouped bars, one group per in-flight count: the
//! throughput ratio of every actor and mode against floor 1 (`_ratio`, native echo) and floor 2 (`_kvratio`,
//! native key-value), with the spread over rounds (`_min`..`_max`) as error bars and the floor as a line at 1.
//!
//! Text is drawn with ab_glyph from a TrueType font read at run time: `$BENCHPLOT_FONT`, else DejaVu Sans or
//! Liberation Sans where Debian installs them.
//!
//! `cargo bench -p lattice-cli --bench serving | tee bench.txt; cargo run -p benchplot -- bench.txt serving.png`

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use plotters::prelude::*;

const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];
const MODES: &[&str] = &["fresh", "reuse"];
const PANELS: &[(&str, &str)] =
    &[("ratio", "req/s vs floor 1 (native echo)"), ("kvratio", "req/s vs floor 2 (native key-value)")];

/// (actor_mode) → in flight → metric → value.
type Figures = BTreeMap<String, BTreeMap<u32, BTreeMap<String, f64>>>;

/// Splits `serving_<actor>_<mode>_c<conc>_<metric>` into (`<actor>_<mode>`, conc, metric).
fn split(name: &str) -> Option<(String, u32, String)> {
    let tokens: Vec<&str> = name.strip_prefix("serving_")?.split('_').collect();
    let at = (2..tokens.len().saturating_sub(1)).find(|&i| {
        MODES.contains(&tokens[i - 1]) && tokens[i].strip_prefix('c').is_some_and(|n| n.parse::<u32>().is_ok())
    })?;
    let conc = tokens[at][1..].parse().ok()?;
    Some((tokens[..at].join("_"), conc, tokens[at + 1..].join("_")))
}

fn parse(text: &str) -> Figures {
    let mut figures = Figures::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some("BENCH"), Some(name), Some(value)) = (words.next(), words.next(), words.next()) else { continue };
        if let (Some((series, conc, metric)), Ok(value)) = (split(name), value.parse::<f64>()) {
            figures.entry(series).or_default().entry(conc).or_default().insert(metric, value);
        }
    }
    figures
}

fn load_font() -> Result<()> {
    let configured = std::env::var("BENCHPLOT_FONT").ok();
    let path = configured
        .as_deref()
        .into_iter()
        .chain(FONTS.iter().copied())
        .find(|p| Path::new(p).is_file())
        .context("no TrueType font found: set BENCHPLOT_FONT to a .ttf file")?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    // Registered fonts live as long as the process.
    plotters::style::register_font("sans-serif", FontStyle::Normal, Vec::leak(bytes))
        .map_err(|_| anyhow!("{path} is not a font ab_glyph can read"))
}

fn draw(figures: &Figures, output: &Path) -> Result<()> {
    let concs: Vec<u32> = {
        let mut all: Vec<u32> = figures.values().flat_map(|by_conc| by_conc.keys().copied()).collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    let series: Vec<&String> = figures.keys().collect();
    let root = BitMapBackend::new(output, (1400, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let root =
        root.titled("lattice serving vs native floors (median of rounds; bars: min..max)", ("sans-serif", 22))?;
    for ((metric, title), area) in PANELS.iter().zip(root.split_evenly((1, PANELS.len()))) {
        let value = |s: &str, c: u32, m: &str| figures.get(s).and_then(|b| b.get(&c)).and_then(|f| f.get(m)).copied();
        let top = series
            .iter()
            .flat_map(|s| concs.iter().filter_map(|&c| value(s, c, &format!("{metric}_max")).or(value(s, c, metric))))
            .fold(1.0f64, f64::max)
            * 1.4; // room for the legend
        let groups = concs.len() as f64;
        let mut chart = ChartBuilder::on(&area)
            .caption(*title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5f64..groups - 0.5, 0f64..top)?;
        let label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 { concs.get(i as usize).map(|c| c.to_string()) } else { None }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(concs.len().max(2))
            .x_label_formatter(&|x| label(x).unwrap_or_default())
            .x_desc("requests in flight")
            .y_desc("ratio (1 = floor)")
            .label_style(("sans-serif", 14))
            .draw()?;
        let width = 0.8 / series.len().max(1) as f64;
        for (i, name) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let mut bars = Vec::new();
            let mut errors = Vec::new();
            for (g, &conc) in concs.iter().enumerate() {
                let Some(v) = value(name, conc, metric) else { continue };
                let x0 = g as f64 - 0.4 + i as f64 * width;
                bars.push(Rectangle::new([(x0, 0.0), (x0 + width * 0.9, v)], color.filled()));
                if let (Some(lo), Some(hi)) =
                    (value(name, conc, &format!("{metric}_min")), value(name, conc, &format!("{metric}_max")))
                    && hi > lo
                {
                    errors.push(ErrorBar::new_vertical(x0 + width * 0.45, lo, v, hi, BLACK.stroke_width(1), 8));
                }
            }
            chart
                .draw_series(bars)?
                .label(name.replace('_', " "))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
            chart.draw_series(errors)?;
        }
        chart
            .draw_series(LineSeries::new([(-0.5, 1.0), (groups - 0.5, 1.0)], BLACK.stroke_width(2)))?
            .label("floor")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], BLACK.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (input, output) = match args.as_slice() {
        [output] => (None, output),
        [input, output] => (Some(input), output),
        _ => bail!("usage: benchplot [BENCH_OUTPUT|-] OUTPUT.png"),
    };
    let text = match input.map(String::as_str) {
        None | Some("-") => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("reading stdin")?;
            text
        }
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
    };
    let figures = parse(&text);
    if figures.is_empty() {
        bail!("no `BENCH serving_<actor>_<mode>_c<n>_ratio` lines in the input");
    }
    let output = Path::new(output);
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    load_font()?;
    draw(&figures, output).with_context(|| format!("drawing {}", output.display()))?;
    eprintln!("wrote {} ({} series)", output.display(), figures.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_series_conc_and_metric() {
        assert_eq!(
            split("serving_kv_counter_fresh_c128_ratio"),
            Some(("kv_counter_fresh".into(), 128, "ratio".into()))
        );
        assert_eq!(split("serving_big_heap_reuse_c1_p50_ratio_min").map(|t| t.2), Some("p50_ratio_min".into()));
        assert_eq!(split("serving_floor_echo_c32_rps"), None);
        assert_eq!(split("density_rss_kb"), None);
        let figures = parse("x\nBENCH serving_kv_counter_fresh_c32_ratio 0.5\nBENCH serving_start_cached_ms 3\n");
        assert_eq!(figures["kv_counter_fresh"][&32]["ratio"], 0.5);
        assert_eq!(figures.len(), 1);
    }
}
