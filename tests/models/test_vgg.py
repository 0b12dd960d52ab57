"""VGG configurations for 32 x 64 log-Mel segments."""

import pytest
import torch
from torch import nn

from emoref.models.vgg import CONFIGURATIONS, VGG

CONV_LAYERS = {"A": 8, "B": 10, "D": 13, "E": 16}  # Simonyan & Zisserman, Table 1 (+3 FC = 11..19)


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_each_configuration_fits_a_segment(name):
    net = VGG(name, 7, width=0.0625, fc=16)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == CONV_LAYERS[name]
    assert [m for m in net.modules() if isinstance(m, nn.Linear)][-1].out_features == 7
    out = net(torch.randn(3, 32, 64))
    assert out.shape == (3, 7)


def test_full_width_is_vggs_channels_and_pooling_stops_at_one():
    net = VGG("E", 4, batch_norm=False)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs][-1] == 512 and convs[0].out_channels == 64
    # 32 x 64 after five 2 x 2 pools is 1 x 2: the first linear layer takes 512 * 2 inputs.
    assert net.classifier[1].in_features == 512 * 2
    # A shorter input (16 frames) stops pooling time at 1 and keeps going in frequency.
    small = VGG("A", 4, width=0.0625, fc=8, input_size=(16, 64))
    assert small(torch.randn(2, 16, 64)).shape == (2, 4)
