//! The network of both models: CNN front end, multi-head self-attention, dense
//! head, and for the beat model a second input of per-beat features.
//!
//! The segment model (defaults of [`AttentionNetConfig`]):
//! ```text
//! signal [B, 1, 3600]
//!  -> Conv1d 1->32 k7 stride 2 + ReLU + MaxPool 2 [B, 32, 900]
//!  -> Conv1d 32->64 k5 + ReLU + MaxPool 2         [B, 64, 450]
//!  -> Conv1d 64->64 k4 stride 4 + ReLU            [B, 64, 112]   (the strided step: 112 tokens)
//!  -> tokens [B, 112, 64] + sinusoidal position code -> 8-head self-attention (residual)
//!  -> mean over tokens [B, 64] -> Dense 128 + ReLU + Dropout -> Dense 2 (logits)
//! features [B, 6] (rhythm) -> Dense 32 + ReLU, joins the pooled tokens before Dense 128
//!   optional (`feature_logits`): -> Dense 2, added to the logits (a "wide" path)
//! attention [B, 112]: attention each token receives, averaged over heads and queries
//! ```
//! The beat model ([`AttentionNetConfig::beat`]): a 252-sample window around an
//! R peak beside the record's typical beat (2 channels), no stride in the first
//! convolution and a strided step of 3, so 21 tokens of 12 samples (33 ms); its
//! RR features `[B, 9]` pass a Dense 32 + ReLU and join the pooled tokens before
//! the dense head:
//! ```text
//! signal [B, 2, 252] -> ... -> pooled [B, 64] --+
//! features [B, 9] -> Dense 32 + ReLU -----------+-> concat [B, 96] -> Dense 128 -> Dense 5
//! ```
//! One token covers 32 samples (89 ms at 360 Hz); the last 16 samples of a
//! window fall outside the last token. The first convolution's stride of 2 keeps
//! the second, the most expensive layer, at 900 positions (measured on the flex
//! backend: conv2 at 1800 positions took 190 ms of a ~450 ms training step).
//!
//! The position code matters: without it self-attention and the mean over tokens
//! are blind to token order, so the network could see beat shapes (a token's
//! receptive field is ~0.15 s) but not the rhythm, the spacing of beats, which is
//! what tells a supraventricular premature beat from a normal one. The ONNX writer in
//! [`super::onnx`] rebuilds exactly this graph from the trained weights.

use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::pool::{MaxPool1d, MaxPool1dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig1d, Relu};
use burn::prelude::*;

/// Hyper-parameters of the network (saved in the model card).
#[derive(Config, Debug)]
pub struct AttentionNetConfig {
    #[config(default = 3600)]
    pub input_samples: usize,
    /// Channels of the `signal` input (2: a beat and its record's template).
    #[config(default = 1)]
    pub input_channels: usize,
    #[config(default = 32)]
    pub conv1_filters: usize,
    #[config(default = 7)]
    pub conv1_kernel: usize,
    #[config(default = 2)]
    pub conv1_stride: usize,
    #[config(default = 64)]
    pub conv2_filters: usize,
    #[config(default = 5)]
    pub conv2_kernel: usize,
    /// Kernel and stride of the strided step that sets the token count.
    #[config(default = 4)]
    pub token_stride: usize,
    #[config(default = 8)]
    pub heads: usize,
    #[config(default = 128)]
    pub dense: usize,
    #[config(default = 0.3)]
    pub dropout: f64,
    /// Dropout on the attention weights (0: its random masks over [B, 8, T, T]
    /// cost more than the rest of the step on the CPU).
    #[config(default = 0.0)]
    pub attention_dropout: f64,
    #[config(default = 2)]
    pub classes: usize,
    /// Add the fixed sinusoidal position code ([`position_code`]) to the tokens.
    #[config(default = true)]
    pub position_code: bool,
    /// Width of the second input `features` (0: none, the segment model).
    #[config(default = 0)]
    pub features: usize,
    /// Units of the Dense + ReLU the features pass before joining the tokens.
    #[config(default = 32)]
    pub feature_units: usize,
    /// Also add a linear map of the features straight to the logits (a "wide"
    /// path beside the deep one): the rhythm's evidence reaches the decision
    /// without passing the layers that also carry the signal's morphology.
    #[config(default = false)]
    pub feature_logits: bool,
    /// Training only: the probability that a whole example's pooled signal
    /// embedding is zeroed (the rest scaled up), so that the features alone
    /// must carry the decision that often. Morphology learnt from a few
    /// training patients transfers worse to new patients than rhythm does.
    #[config(default = 0.0)]
    pub signal_dropout: f64,
}

impl AttentionNetConfig {
    /// The beat model: `channels` x `samples` around an R peak plus `features`
    /// RR features, 5 classes.
    pub fn beat(channels: usize, samples: usize, features: usize) -> Self {
        AttentionNetConfig::new()
            .with_input_samples(samples)
            .with_input_channels(channels)
            .with_conv1_stride(1)
            .with_token_stride(3)
            .with_classes(5)
            .with_features(features)
    }

    /// Input samples per token.
    pub fn samples_per_token(&self) -> usize {
        self.conv1_stride * 4 * self.token_stride
    }

    /// Tokens the attention sees.
    pub fn tokens(&self) -> usize {
        self.input_samples / self.samples_per_token()
    }

    /// A freshly initialised network.
    pub fn init(&self, device: &Device) -> AttentionNet {
        let same = |k: usize| PaddingConfig1d::Explicit(k / 2, k / 2);
        AttentionNet {
            conv1: Conv1dConfig::new(self.input_channels, self.conv1_filters, self.conv1_kernel)
                .with_stride(self.conv1_stride)
                .with_padding(same(self.conv1_kernel))
                .init(device),
            conv2: Conv1dConfig::new(self.conv1_filters, self.conv2_filters, self.conv2_kernel)
                .with_padding(same(self.conv2_kernel))
                .init(device),
            conv3: Conv1dConfig::new(self.conv2_filters, self.conv2_filters, self.token_stride)
                .with_stride(self.token_stride)
                .init(device),
            pool: MaxPool1dConfig::new(2).init(),
            attention: MultiHeadAttentionConfig::new(self.conv2_filters, self.heads)
                .with_dropout(self.attention_dropout)
                .init(device),
            features: (self.features > 0)
                .then(|| LinearConfig::new(self.features, self.feature_units).init(device)),
            dense: LinearConfig::new(
                self.conv2_filters
                    + if self.features > 0 {
                        self.feature_units
                    } else {
                        0
                    },
                self.dense,
            )
            .init(device),
            head: LinearConfig::new(self.dense, self.classes).init(device),
            wide: (self.features > 0 && self.feature_logits)
                .then(|| LinearConfig::new(self.features, self.classes).init(device)),
            dropout: DropoutConfig::new(self.dropout).init(),
            signal_dropout: DropoutConfig::new(self.signal_dropout).init(),
            relu: Relu::new(),
            position_code: self.position_code,
        }
    }
}

/// The fixed sinusoidal position code of "Attention is all you need",
/// `[tokens * channels]` row-major: even channels sin, odd channels cos.
pub fn position_code(tokens: usize, channels: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(tokens * channels);
    for t in 0..tokens {
        for c in 0..channels {
            let rate = 10_000f64.powf(-((c / 2 * 2) as f64) / channels as f64);
            let angle = t as f64 * rate;
            out.push(if c % 2 == 0 { angle.sin() } else { angle.cos() } as f32);
        }
    }
    out
}

/// The network (segment or beat model).
#[derive(Module, Debug)]
pub struct AttentionNet {
    pub conv1: Conv1d,
    pub conv2: Conv1d,
    pub conv3: Conv1d,
    pub pool: MaxPool1d,
    pub attention: MultiHeadAttention,
    /// The features' Dense layer (beat model only).
    pub features: Option<Linear>,
    pub dense: Linear,
    pub head: Linear,
    /// Features straight to logits ([`AttentionNetConfig::feature_logits`]).
    pub wide: Option<Linear>,
    pub dropout: Dropout,
    /// Drops whole examples' signal embeddings while training.
    pub signal_dropout: Dropout,
    pub relu: Relu,
    pub position_code: bool,
}

/// Outputs of one forward pass.
pub struct NetOutput {
    /// `[batch, classes]`
    pub logits: Tensor<2>,
    /// `[batch, tokens]` (networks without attention: none)
    pub attention: Option<Tensor<2>>,
}

impl AttentionNet {
    /// Forward pass on `[batch, 1, samples]` and, for a network with a feature
    /// input, `[batch, features]` (ignored by one without).
    pub fn forward(&self, signal: Tensor<3>, features: Option<Tensor<2>>) -> NetOutput {
        let x = self
            .pool
            .forward(self.relu.forward(self.conv1.forward(signal)));
        let x = self.pool.forward(self.relu.forward(self.conv2.forward(x)));
        let x = self.relu.forward(self.conv3.forward(x));
        let tokens = x.swap_dims(1, 2); // [B, T, C]
        let tokens = if self.position_code {
            let [_, t, c] = tokens.dims();
            let code = TensorData::new(position_code(t, c), [1, t, c]);
            tokens.clone() + Tensor::<3>::from_data(code, &tokens.device())
        } else {
            tokens
        };
        let mha = self.attention.forward(MhaInput::self_attn(tokens.clone()));
        let hidden = tokens + mha.context;
        let pooled: Tensor<2> = hidden.mean_dim(1).squeeze_dim(1);
        // One keep-or-drop factor per example (identity outside training).
        let [batch, _] = pooled.dims();
        let keep = self
            .signal_dropout
            .forward(Tensor::<2>::ones([batch, 1], &pooled.device()));
        let pooled = pooled * keep;
        let (pooled, wide) = match (&self.features, features) {
            (Some(layer), Some(f)) => (
                Tensor::cat(vec![pooled, self.relu.forward(layer.forward(f.clone()))], 1),
                self.wide.as_ref().map(|w| w.forward(f)),
            ),
            _ => (pooled, None),
        };
        let dense = self
            .dropout
            .forward(self.relu.forward(self.dense.forward(pooled)));
        let logits = self.head.forward(dense);
        let logits = match wide {
            Some(w) => logits + w,
            None => logits,
        };
        // weights [B, H, T, T]: mean over heads and queries -> [B, T]
        let attention: Tensor<2> = mha.weights.mean_dim(1).mean_dim(2).squeeze_dims(&[1, 2]);
        NetOutput {
            logits,
            attention: Some(attention),
        }
    }
}

impl super::training::Classifier for AttentionNet {
    fn output(&self, signal: Tensor<3>, features: Option<Tensor<2>>) -> NetOutput {
        self.forward(signal, features)
    }

    fn freeze_backbone(mut self) -> Self {
        use burn::module::Module;
        self.conv1 = self.conv1.no_grad();
        self.conv2 = self.conv2.no_grad();
        self.conv3 = self.conv3.no_grad();
        self.attention = self.attention.no_grad();
        self
    }

    fn with_new_head(mut self, classes: usize, device: &Device) -> Self {
        self.head = super::training::relinked(&self.head, classes, device);
        self.wide = self
            .wide
            .map(|w| super::training::relinked(&w, classes, device));
        self
    }
}
