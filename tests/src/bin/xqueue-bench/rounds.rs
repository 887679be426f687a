//! The headline ratio, XQueue-Redis processing / raw baseline, from back-to-back pairs.
//!
//! The two processing rows of a run are measured minutes apart, and on a shared VM the speed
//! of the same work drifts by a quarter over minutes (measured: the same XQueue row at 53,000
//! and 84,000 tasks/s in two runs a minute apart). A pair measured back to back sees the same
//! spell, so the median of a few pairs is what the ratio check uses.

use crate::cli::{Measure, Phase};
use crate::report::{thousands, Report, Value};
use crate::setup::Target;
use crate::{phases, raw, Ctx};

/// Sets `report.ratio` (and its row): the median of `--rounds` back-to-back pairs when they
/// can run, else the ratio of the two processing rows.
pub async fn ratio(ctx: &Ctx, report: &mut Report) {
    let rows = match (
        report.rate_of("redis (library)", "processing"),
        report.rate_of("raw baseline", "processing"),
    ) {
        (Some(x), Some(raw)) if raw > 0.0 => Some(x / raw),
        _ => None,
    };
    let args = &ctx.args;
    let can_pair =
        args.runs(Phase::Raw) && args.runs(Phase::Redis) && args.measures(Measure::Processing);
    let mut pairs = Vec::new();
    if can_pair {
        for round in 0..args.rounds {
            match pair(ctx, round).await {
                Ok(p) => pairs.push(p),
                Err(e) => tracing::error!(round, error = %e, "ratio round failed"),
            }
        }
    }
    let (ratio, note) = match median(&pairs) {
        Some(m) => (Some(m), rounds_note(&pairs, rows, args.tasks)),
        None => (
            rows,
            "the two processing rows above, same run, same Redis".to_string(),
        ),
    };
    report.ratio_rounds = pairs;
    report.ratio = ratio;
    if let Some(ratio) = ratio {
        report.add(
            "ratio",
            "XQueue-Redis processing / raw",
            Value::Ratio { ratio },
            note,
        );
    }
}

/// One round: the raw baseline's processing rate, then XQueue-Redis's.
async fn pair(ctx: &Ctx, round: usize) -> crate::Result<[f64; 2]> {
    let raw = raw::processing_rate(ctx, round).await?;
    let xqueue = phases::processing_rate(ctx, &Target::Redis, round).await?;
    Ok([raw, xqueue])
}

/// The median of the pairs' ratios (the mean of the middle two for an even count).
fn median(pairs: &[[f64; 2]]) -> Option<f64> {
    let mut ratios: Vec<f64> = pairs
        .iter()
        .filter(|[raw, _]| *raw > 0.0)
        .map(|[raw, x]| x / raw)
        .collect();
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let mid = ratios.len() / 2;
    Some(if ratios.len() % 2 == 1 {
        ratios[mid]
    } else {
        (ratios[mid - 1] + ratios[mid]) / 2.0
    })
}

fn rounds_note(pairs: &[[f64; 2]], rows: Option<f64>, tasks: usize) -> String {
    let each: Vec<String> = pairs
        .iter()
        .map(|[raw, x]| {
            format!(
                "{:.1} % ({} of {} /s)",
                x / raw * 100.0,
                thousands(*x),
                thousands(*raw)
            )
        })
        .collect();
    let rows = rows.map_or(String::new(), |r| {
        format!(
            "; the two processing rows above, minutes apart: {:.1} %",
            r * 100.0
        )
    });
    format!(
        "median of {} (raw, then XQueue-Redis, {tasks} tasks each, same Redis): {}{rows}",
        match pairs.len() {
            1 => "1 back-to-back pair".to_string(),
            n => format!("{n} back-to-back pairs"),
        },
        each.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_ratios() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[[0.0, 5.0]]), None);
        assert_eq!(median(&[[100.0, 30.0]]), Some(0.3));
        let odd = [[100.0, 30.0], [100.0, 10.0], [200.0, 40.0]];
        assert_eq!(median(&odd), Some(0.2));
        let even = [[100.0, 30.0], [100.0, 10.0], [200.0, 40.0], [100.0, 50.0]];
        assert_eq!(median(&even), Some(0.25));
    }
}
