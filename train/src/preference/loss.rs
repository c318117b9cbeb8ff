//! The preference losses of one pair, their derivatives by the policy's log-probabilities,
//! and the implicit rewards (in f64).

/// A preference objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PreferenceLoss {
    /// DPO (Rafailov et al., 2023): `−(1−ε)·log σ(β·h) − ε·log σ(−β·h)`, with `h` the chosen
    /// response's log-ratio (policy over reference, summed over its tokens) minus the rejected
    /// one's and `ε` the label smoothing (conservative DPO; 0: plain DPO).
    Sigmoid {
        /// β: how far from the reference the policy may move (TRL's default 0.1).
        beta: f64,
        /// ε in `[0, 0.5)`: the assumed probability that a pair's labels are flipped.
        label_smoothing: f64,
        /// Weight of the chosen response's mean negative log-likelihood added to the loss
        /// (RPO, TRL's `rpo_alpha`; 0: none). Keeps the chosen responses likely: plain DPO
        /// lowers both sides' likelihood and lets the model drift on other text.
        rpo_alpha: f64,
    },
    /// IPO (Azar et al., 2023): `(h − 1/(2β))²`, with the log-ratios averaged over each
    /// response's tokens (as TRL computes it).
    Ipo {
        /// β: the regularisation (the target margin is `1/(2β)`).
        beta: f64,
        /// As for [`PreferenceLoss::Sigmoid`].
        rpo_alpha: f64,
    },
}

impl PreferenceLoss {
    /// β of either loss.
    pub fn beta(&self) -> f64 {
        match *self {
            PreferenceLoss::Sigmoid { beta, .. } | PreferenceLoss::Ipo { beta, .. } => beta,
        }
    }

    /// The weight of the chosen responses' negative log-likelihood (RPO).
    pub fn rpo_alpha(&self) -> f64 {
        match *self {
            PreferenceLoss::Sigmoid { rpo_alpha, .. } | PreferenceLoss::Ipo { rpo_alpha, .. } => {
                rpo_alpha
            }
        }
    }

    /// Checks the parameters; the error names the wrong one.
    pub fn validate(&self) -> Result<(), String> {
        let beta = self.beta();
        if !(beta.is_finite() && beta > 0.0) {
            return Err(format!("beta must be a positive number, got {beta}"));
        }
        let alpha = self.rpo_alpha();
        if !(alpha.is_finite() && alpha >= 0.0) {
            return Err(format!("rpo alpha must be a number >= 0, got {alpha}"));
        }
        if let PreferenceLoss::Sigmoid {
            label_smoothing, ..
        } = *self
        {
            if !(0.0..0.5).contains(&label_smoothing) {
                return Err(format!(
                    "label smoothing must be in [0, 0.5), got {label_smoothing}"
                ));
            }
        }
        Ok(())
    }

    /// One pair's loss, its derivatives by the policy's summed log-probabilities of the
    /// chosen and rejected responses, and the implicit rewards `β·(log-ratio)`.
    pub fn pair(&self, p: &PairLogps) -> PairLoss {
        let mut out = self.preference_term(p);
        let alpha = self.rpo_alpha();
        if alpha > 0.0 {
            // α · (−log p(chosen) / tokens).
            let n = p.policy[0].tokens.max(1) as f64;
            out.loss -= alpha * p.policy[0].sum / n;
            out.d_policy[0] -= alpha / n;
        }
        out
    }

    /// [`Self::pair`] without the RPO term.
    fn preference_term(&self, p: &PairLogps) -> PairLoss {
        let [pc, pr] = p.policy;
        let [rc, rr] = p.reference;
        match *self {
            PreferenceLoss::Sigmoid {
                beta,
                label_smoothing: eps,
                ..
            } => {
                let (ratio_c, ratio_r) = (pc.sum - rc.sum, pr.sum - rr.sum);
                let z = beta * (ratio_c - ratio_r);
                let loss = (1.0 - eps) * softplus(-z) + eps * softplus(z);
                // d softplus(x)/dx = σ(x).
                let dz = -(1.0 - eps) * sigmoid(-z) + eps * sigmoid(z);
                let dh = beta * dz;
                PairLoss {
                    loss,
                    d_policy: [dh, -dh],
                    rewards: [beta * ratio_c, beta * ratio_r],
                }
            }
            PreferenceLoss::Ipo { beta, .. } => {
                let (nc, nr) = (pc.tokens.max(1) as f64, pr.tokens.max(1) as f64);
                let ratio_c = (pc.sum - rc.sum) / nc;
                let ratio_r = (pr.sum - rr.sum) / nr;
                let gap = ratio_c - ratio_r - 1.0 / (2.0 * beta);
                let dh = 2.0 * gap;
                PairLoss {
                    loss: gap * gap,
                    d_policy: [dh / nc, -dh / nr],
                    rewards: [beta * ratio_c, beta * ratio_r],
                }
            }
        }
    }
}

/// The summed log-probability of one response's tokens and how many there are.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SeqLogp {
    /// `Σ log p(token)` over the response's scored tokens.
    pub sum: f64,
    /// Scored tokens.
    pub tokens: usize,
}

/// One pair's log-probabilities, `[chosen, rejected]`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PairLogps {
    /// Under the policy being trained.
    pub policy: [SeqLogp; 2],
    /// Under the reference policy.
    pub reference: [SeqLogp; 2],
}

/// What [`PreferenceLoss::pair`] gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairLoss {
    /// The pair's loss.
    pub loss: f64,
    /// `∂loss/∂(policy's summed log-probability)` of the chosen and the rejected response.
    pub d_policy: [f64; 2],
    /// Implicit rewards `β·(log-ratio)` of the chosen and the rejected response.
    pub rewards: [f64; 2],
}

impl PairLoss {
    /// The reward margin (chosen − rejected).
    pub fn margin(&self) -> f64 {
        self.rewards[0] - self.rewards[1]
    }
}

/// `log(1 + eˣ)`, without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `1 / (1 + e⁻ˣ)`, without overflow.
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}
