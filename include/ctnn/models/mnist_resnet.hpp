// The seed article's MNIST network: a narrow ResNet18 for 1×28×28 digits.
#pragma once

#include "ctnn/models/resnet.hpp"

namespace ctnn {

/// SeedResidualBlock<In, Out, Stride>: the same computation as ResidualBlock, under the seed's
/// names: left.{0,1,3,4} for conv, BN, (ReLU), conv, BN and shortcut.{0,1} for the projection.
/// PyTorch: the seed's ResidualBlock module.
template <int In, int Out, int Stride = 1>
struct SeedResidualBlock
    : Block<Residual<Named<"left", Sequential<Conv2d<In, Out, 3, Stride, 1>, BatchNorm2d<Out>, ReLU,
                                              Conv2d<Out, Out, 3, 1, 1>, BatchNorm2d<Out>>>,
                     ShortcutFor<"shortcut", In, Out, Stride>>,
            In, Out, 1> {};

/// MnistResNet18<Classes = 10>: conv3×3 1->16 + BN + ReLU, four stages of two blocks (16/32/64/128,
/// strides 1/2/2/2), 4×4 average pool, fc 128 -> Classes. Bind it to Shape<1, 28, 28>.
/// 701,178 parameters, 28,573,184 multiply-adds per image. PyTorch: the seed's ResNet18(), which
/// keeps PyTorch's default initialisation (it has no He-init loop), and so does this alias.
template <int Classes = 10>
struct MnistResNet18
    : Sequential<Named<"conv1", Sequential<Conv2d<1, 16, 3, 1, 1>, BatchNorm2d<16>, ReLU>>,
                 Named<"layer1", MakeStage<SeedResidualBlock, 16, 16, 2, 1>>,
                 Named<"layer2", MakeStage<SeedResidualBlock, 16, 32, 2, 2>>,
                 Named<"layer3", MakeStage<SeedResidualBlock, 32, 64, 2, 2>>,
                 Named<"layer4", MakeStage<SeedResidualBlock, 64, 128, 2, 2>>,
                 Named<"avg_pool", AvgPool2d<4>>, Named<"flatten", Flatten>, Named<"fc", Linear<128, Classes>>> {
  static constexpr Init init = Init::pytorch_default;
};

}  // namespace ctnn
