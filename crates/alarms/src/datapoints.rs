//! Reading an alarm's datapoints from the store: the statistic's value per period (missing
//! when there is no data or too few samples), and for anomaly alarms the band of each period
//! learned from the same time of day on earlier days. Blocking; the evaluator's thread calls
//! these.

use gatehouse_store::{MetricQuery, Store, StoreError};

use crate::anomaly::{AnomalySpec, Band, SEASON_SECS, band};
use crate::spec::AlarmSpec;

/// The statistic's value in each of the `count` periods from `start` (`None` when missing or
/// with too few samples), in one store query.
pub(crate) fn read_slots(
    store: &Store,
    spec: &AlarmSpec,
    start: i64,
    count: usize,
) -> Result<Vec<Option<f64>>, StoreError> {
    let period = i64::from(spec.period_secs);
    let points = store.query_metrics(&MetricQuery {
        metric: spec.metric.clone(),
        dimensions: spec.dimensions.clone(),
        period_secs: spec.period_secs,
        start_unix: start,
        end_unix: start + period * count as i64,
    })?;
    let min_samples = spec.effective_min_sample_count();
    let mut values = vec![None; count];
    for point in points {
        let slot = usize::try_from((point.timestamp_unix - start).div_euclid(period));
        if let Ok(slot) = slot
            && slot < count
            && point.stats.sample_count >= min_samples
        {
            values[slot] = spec.statistic.evaluate(&point.stats);
        }
    }
    Ok(values)
}

/// The band of each of the `count` periods from `start`, learned from the same periods on the
/// previous `training_days` days. One store query covers all of them, from `training_days`
/// days before the first period to one day before the last, and is sorted into slots here.
pub(crate) fn learn_bands(
    store: &Store,
    spec: &AlarmSpec,
    anomaly: &AnomalySpec,
    start: i64,
    count: usize,
) -> Result<Vec<Option<Band>>, StoreError> {
    let period = i64::from(spec.period_secs);
    debug_assert_eq!(SEASON_SECS % period, 0, "validated spec");
    let days = i64::from(anomaly.training_days);
    let history_start = start - days * SEASON_SECS;
    let slots_per_day = (SEASON_SECS / period) as usize;
    // Training days run from `history_start` to one day before the last evaluated period.
    let history_count = (days as usize - 1) * slots_per_day + count;
    let history = read_slots(store, spec, history_start, history_count)?;
    // Period `slot` on the day `back` days earlier is history slot (days − back) · slots_per_day
    // + slot.
    let bands = (0..count)
        .map(|slot| {
            let same_time: Vec<f64> = (1..=days as usize)
                .filter_map(|back| history[(days as usize - back) * slots_per_day + slot])
                .collect();
            band(anomaly, &same_time)
        })
        .collect();
    Ok(bands)
}
