//! Times forward + backward of each layer of the segment network on the flex backend.
use burn::nn::conv::Conv1dConfig;
use burn::nn::pool::MaxPool1dConfig;
use burn::nn::PaddingConfig1d;
use burn::prelude::*;
use burn::tensor::Distribution;
use std::time::Instant;

fn time<F: Fn() -> Tensor<3>>(name: &str, f: F) {
    let t = Instant::now();
    for _ in 0..5 {
        let y = f();
        let _g = y.sum().backward();
    }
    println!(
        "{name:<40} {:>8.1} ms",
        t.elapsed().as_secs_f64() * 1000.0 / 5.0
    );
}

fn main() {
    let d = Device::flex().autodiff();
    let b = 32;
    let x1 = Tensor::<3>::random([b, 1, 3600], Distribution::Normal(0.0, 1.0), &d).require_grad();
    let x32 = Tensor::<3>::random([b, 32, 1800], Distribution::Normal(0.0, 1.0), &d).require_grad();
    let x32b =
        Tensor::<3>::random([b, 32, 3600], Distribution::Normal(0.0, 1.0), &d).require_grad();
    let x64 = Tensor::<3>::random([b, 64, 900], Distribution::Normal(0.0, 1.0), &d).require_grad();
    let c1 = Conv1dConfig::new(1, 32, 7)
        .with_padding(PaddingConfig1d::Explicit(3, 3))
        .init(&d);
    let c2 = Conv1dConfig::new(32, 64, 5)
        .with_padding(PaddingConfig1d::Explicit(2, 2))
        .init(&d);
    let c3 = Conv1dConfig::new(64, 64, 8).with_stride(8).init(&d);
    let pool = MaxPool1dConfig::new(2).init();
    time("conv1 1->32 k7 @3600", || c1.forward(x1.clone()));
    time("maxpool2 32ch @3600", || pool.forward(x32b.clone()));
    time("relu 32ch @3600", || {
        burn::tensor::activation::relu(x32b.clone())
    });
    time("conv2 32->64 k5 @1800", || c2.forward(x32.clone()));
    time("conv3 64->64 k8 s8 @900", || c3.forward(x64.clone()));
}
