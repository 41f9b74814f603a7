//! Smooth weighted round robin, precomputed.
//!
//! nginx's smooth weighted round robin is stateful; to keep the decision a
//! pure function, the table computes one full cycle of it when it is built,
//! and a request indexes the cycle with its sequence number. Over every full
//! cycle the shares are exact, and picks of one service are spread evenly
//! through the cycle (90/10 gives one pick of the light service in ten).

/// One cycle of smooth weighted round robin over services with the given
/// weights, as service indices; empty when every weight is 0. Weights are
/// divided by their greatest common divisor first, so 100/100 is a cycle of
/// two.
pub(crate) fn smooth_cycle(weights: &[u32]) -> Vec<u16> {
    let divisor = weights.iter().copied().fold(0, gcd);
    if divisor == 0 {
        return Vec::new();
    }
    // (weight, current) per service; on the stack for the usual few.
    let mut stack = [(0i64, 0i64); 8];
    let mut heap = Vec::new();
    let state: &mut [(i64, i64)] = if weights.len() <= stack.len() {
        &mut stack[..weights.len()]
    } else {
        heap.resize(weights.len(), (0, 0));
        &mut heap
    };
    for (s, w) in state.iter_mut().zip(weights) {
        s.0 = i64::from(w / divisor);
    }
    let total: i64 = state.iter().map(|s| s.0).sum();
    let mut cycle = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0usize;
        for i in 0..state.len() {
            state[i].1 += state[i].0;
            // Strictly greater keeps the first listed service on ties, so the
            // cycle is deterministic.
            if state[i].1 > state[best].1 {
                best = i;
            }
        }
        state[best].1 -= total;
        cycle.push(best as u16);
    }
    cycle
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(cycle: &[u16], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for i in cycle {
            c[*i as usize] += 1;
        }
        c
    }

    #[test]
    fn exact_shares_per_cycle() {
        let c = smooth_cycle(&[90, 10]);
        assert_eq!(c.len(), 10);
        assert_eq!(counts(&c, 2), vec![9, 1]);
        let c = smooth_cycle(&[100, 100]);
        assert_eq!(c, vec![0, 1]);
        let c = smooth_cycle(&[5, 0, 3]);
        assert_eq!(counts(&c, 3), vec![5, 0, 3]);
        assert!(smooth_cycle(&[0, 0]).is_empty());
    }

    #[test]
    fn smooth_not_bursty() {
        // 5/1/1 in nginx's smooth order: a a b a c a a.
        assert_eq!(smooth_cycle(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
    }
}
