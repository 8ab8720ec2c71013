//! A CNN + LSTM beat classifier on one heartbeat row (187 samples at 125 Hz),
//! the shape of the CNN/RNN models many notebooks train on the Kaggle
//! heartbeat files: two convolutions find the waves, an LSTM reads them in
//! order, its last hidden state feeds a small dense head.
//! ```text
//! signal [B, 1, 187]
//!  -> Conv1d 1->32 k5 (same) + ReLU + MaxPool 2   [B, 32, 93]
//!  -> Conv1d 32->64 k5 (same) + ReLU + MaxPool 2  [B, 64, 46]
//!  -> 46 steps of 64 -> LSTM (64 hidden) -> the last hidden state [B, 64]
//!  -> Dense 32 + ReLU -> Dense 5 (logits)
//! ```
//! burn's [`Lstm`] is the standard cell (sigmoid gates, tanh cell and
//! output), the cell of ONNX's `LSTM` operator, which the writer
//! ([`super::onnx::export_cnn_lstm`]) uses with the gates' weights laid out
//! as ONNX wants them (i, o, f, c).

use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::pool::{MaxPool1d, MaxPool1dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig1d, Relu};
use burn::nn::{Lstm, LstmConfig};
use burn::prelude::*;

use super::model::NetOutput;

/// Hyper-parameters of the network (saved in the model card).
#[derive(Config, Debug)]
pub struct CnnLstmConfig {
    #[config(default = 187)]
    pub input_samples: usize,
    #[config(default = 32)]
    pub conv1_filters: usize,
    #[config(default = 64)]
    pub conv2_filters: usize,
    /// Kernel of both convolutions (odd: "same" padding).
    #[config(default = 5)]
    pub kernel: usize,
    #[config(default = 64)]
    pub hidden: usize,
    #[config(default = 32)]
    pub dense: usize,
    #[config(default = 5)]
    pub classes: usize,
}

impl CnnLstmConfig {
    /// Steps the LSTM reads (46 for the defaults).
    pub fn steps(&self) -> usize {
        self.input_samples / 2 / 2
    }

    /// A freshly initialised network.
    pub fn init(&self, device: &Device) -> CnnLstm {
        let pad = PaddingConfig1d::Explicit(self.kernel / 2, self.kernel / 2);
        CnnLstm {
            conv1: Conv1dConfig::new(1, self.conv1_filters, self.kernel)
                .with_padding(pad.clone())
                .init(device),
            conv2: Conv1dConfig::new(self.conv1_filters, self.conv2_filters, self.kernel)
                .with_padding(pad)
                .init(device),
            pool: MaxPool1dConfig::new(2).init(),
            lstm: LstmConfig::new(self.conv2_filters, self.hidden, true).init(device),
            dense: LinearConfig::new(self.hidden, self.dense).init(device),
            head: LinearConfig::new(self.dense, self.classes).init(device),
            relu: Relu::new(),
        }
    }
}

/// The network.
#[derive(Module, Debug)]
pub struct CnnLstm {
    pub conv1: Conv1d,
    pub conv2: Conv1d,
    pub pool: MaxPool1d,
    pub lstm: Lstm,
    pub dense: Linear,
    pub head: Linear,
    pub relu: Relu,
}

impl CnnLstm {
    /// Logits of `[batch, 1, samples]`.
    pub fn forward(&self, signal: Tensor<3>) -> Tensor<2> {
        let x = self
            .pool
            .forward(self.relu.forward(self.conv1.forward(signal)));
        let x = self.pool.forward(self.relu.forward(self.conv2.forward(x)));
        let (_, state) = self.lstm.forward(x.swap_dims(1, 2), None);
        let h = self.relu.forward(self.dense.forward(state.hidden));
        self.head.forward(h)
    }
}

impl super::training::Classifier for CnnLstm {
    fn output(&self, signal: Tensor<3>, _features: Option<Tensor<2>>) -> NetOutput {
        NetOutput {
            logits: self.forward(signal),
            attention: None,
        }
    }

    fn freeze_backbone(mut self) -> Self {
        self.conv1 = self.conv1.no_grad();
        self.conv2 = self.conv2.no_grad();
        self.lstm = self.lstm.no_grad();
        self
    }

    fn with_new_head(mut self, classes: usize, device: &Device) -> Self {
        self.head = super::training::relinked(&self.head, classes, device);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let cfg = CnnLstmConfig::new();
        assert_eq!(cfg.steps(), 46);
        let device = Device::flex();
        let net = cfg.init(&device);
        let x = Tensor::<3>::zeros([2, 1, 187], &device);
        assert_eq!(net.forward(x).dims(), [2, 5]);
    }
}
