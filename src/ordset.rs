//! The ordered set of `(u64, u64)` pairs the scheduler and the engine keep their orders
//! in: sorted runs of at most [`RUN`] pairs, in order.
//!
//! It does what they asked of `BTreeSet` (insert, remove, first, ordered iteration from a
//! bound) in O(log n) plus a move within one run, with a fraction of its code: the B-tree
//! was 3 KiB of the gzipped package. Pairs mostly arrive in ascending order (seqs, times)
//! and leave from the front, so most operations find their run with one comparison, and
//! runs filled by appends stay full. Natively, 100,000 transactions inserted into the
//! scheduler and run take less time than with the B-tree.

/// The longest run: a removal or an insertion moves at most this many pairs.
const RUN: usize = 128;

type Pair = (u64, u64);

#[derive(Debug, Default)]
pub struct OrdSet {
    /// Non-empty, each sorted, each wholly below the next.
    runs: Vec<Vec<Pair>>,
    len: usize,
}

impl OrdSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    // `clear` and `contains` serve the engine, which is built for wasm only.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub fn clear(&mut self) {
        self.runs.clear();
        self.len = 0;
    }

    /// The run that holds `x` or would: the first whose last pair is not below it, else
    /// the last run (None when empty). Then where `x` is in it, or would go.
    fn find(&self, x: &Pair) -> Option<(usize, Result<usize, usize>)> {
        let last = self.runs.len().checked_sub(1)?;
        // Pairs mostly come and go at either end.
        let r = if self.runs[0].last() >= Some(x) {
            0
        } else if self.runs[last][0] <= *x {
            last
        } else {
            self.runs.partition_point(|run| run.last() < Some(x))
        };
        Some((r, self.runs[r].binary_search(x)))
    }

    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub fn contains(&self, x: &Pair) -> bool {
        matches!(self.find(x), Some((_, Ok(_))))
    }

    /// Adds `x`; false if it was there already.
    pub fn insert(&mut self, x: Pair) -> bool {
        let Some((r, at)) = self.find(&x) else {
            self.runs.push(vec![x]);
            self.len = 1;
            return true;
        };
        let Err(i) = at else { return false };
        self.len += 1;
        let last = r + 1 == self.runs.len();
        let run = &mut self.runs[r];
        if run.len() < RUN {
            run.insert(i, x);
        } else if i == RUN && last {
            // Ascending inserts start a new run and leave this one full.
            self.runs.push(vec![x]);
        } else {
            let mut upper = run.split_off(RUN / 2);
            if i <= RUN / 2 {
                run.insert(i, x);
            } else {
                upper.insert(i - RUN / 2, x);
            }
            self.runs.insert(r + 1, upper);
        }
        true
    }

    /// Takes `x` out; false if it was not there.
    pub fn remove(&mut self, x: &Pair) -> bool {
        let Some((r, Ok(i))) = self.find(x) else {
            return false;
        };
        self.len -= 1;
        self.runs[r].remove(i);
        if self.runs[r].is_empty() {
            self.runs.remove(r);
        }
        true
    }

    pub fn first(&self) -> Option<&Pair> {
        self.runs.first().map(|run| &run[0])
    }

    pub fn pop_first(&mut self) -> Option<Pair> {
        let x = *self.first()?;
        self.remove(&x);
        Some(x)
    }

    /// Every pair, ascending.
    pub fn iter(&self) -> impl Iterator<Item = &Pair> + '_ {
        self.runs.iter().flatten()
    }

    /// The pairs not below `lo`, ascending.
    pub fn from(&self, lo: Pair) -> impl Iterator<Item = &Pair> + '_ {
        let (r, i) = match self.find(&lo) {
            Some((r, Ok(i) | Err(i))) => (r, i),
            None => (0, 0),
        };
        let head = self.runs.get(r).map_or(&[][..], |run| &run[i..]);
        head.iter()
            .chain(self.runs.get(r + 1..).unwrap_or_default().iter().flatten())
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Pair),
        Remove(Pair),
        PopFirst,
    }

    /// Small values so that operations hit pairs already there; a wide one now and then.
    fn pair() -> impl Strategy<Value = Pair> {
        (0u64..4, prop_oneof![0u64..2_000, any::<u64>()])
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => pair().prop_map(Op::Insert),
            4 => pair().prop_map(Op::Remove),
            1 => Just(Op::PopFirst),
        ]
    }

    fn check(set: &OrdSet, model: &BTreeSet<Pair>, probe: Pair) {
        assert_eq!(set.len(), model.len());
        assert_eq!(set.is_empty(), model.is_empty());
        assert_eq!(set.first(), model.first());
        assert!(set.iter().eq(model.iter()));
        assert!(set.from(probe).eq(model.range(probe..)));
        assert_eq!(set.contains(&probe), model.contains(&probe));
        assert!(set
            .runs
            .iter()
            .all(|run| !run.is_empty() && run.len() <= RUN));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every operation answers as `BTreeSet` does, through enough pairs to split and
        /// empty many runs.
        #[test]
        fn behaves_as_a_btree_set(ops in prop::collection::vec(op(), 1..5_000), probe in pair()) {
            let mut set = OrdSet::new();
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(x) => prop_assert_eq!(set.insert(x), model.insert(x)),
                    Op::Remove(x) => prop_assert_eq!(set.remove(&x), model.remove(&x)),
                    Op::PopFirst => prop_assert_eq!(set.pop_first(), model.pop_first()),
                }
                prop_assert_eq!(set.len(), model.len());
                prop_assert_eq!(set.first(), model.first());
            }
            check(&set, &model, probe);
        }
    }

    #[test]
    fn ascending_inserts_fill_runs_and_drain_from_the_front() {
        let mut set = OrdSet::new();
        let mut model = BTreeSet::new();
        for s in 0..10 * RUN as u64 {
            set.insert((0, s));
            model.insert((0, s));
        }
        assert_eq!(set.runs.len(), 10);
        check(&set, &model, (0, 3 * RUN as u64 + 7));
        for s in (0..10 * RUN as u64).rev().step_by(3) {
            set.insert((1, s));
            model.insert((1, s));
        }
        while set.len() > 5 {
            assert_eq!(set.pop_first(), model.pop_first());
        }
        check(&set, &model, (1, 0));
        set.clear();
        check(&set, &BTreeSet::new(), (0, 0));
        assert!(set.insert((2, 2)) && !set.insert((2, 2)));
    }
}
