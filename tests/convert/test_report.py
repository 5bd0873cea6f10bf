"""The parameter report of an inflation (:class:`InflationReport`): every
key accounted for, the folded table, and the log."""
import re

from mmengine.logging import MMLogger

from tests.test_inflation import image_sd, image_vit, vivit
from vivit_mm import inflate_image_weights
from vivit_mm.convert.report import InflationReport, fold_keys
from vivit_mm.models import ViViTM1, ViViTM2


def test_report_lists_every_key():
    vit = image_vit(cls=True)
    model = vivit(ViViTM2, num_temporal_layers=1)
    report = inflate_image_weights(model, image_sd(vit), logger=None)
    assert isinstance(report, InflationReport)
    assert report.layout == 'mmpretrain'
    assert sorted(report.unused) == ['head.layers.head.bias',
                                     'head.layers.head.weight']
    assert 'never taken' in report.unused_notes['head.layers.head.weight']
    assert any(k.startswith('temporal_layers.0.') for k in report.new)
    accounted = set(report.loaded) | set(report.inflated) | \
        set(report.resized) | set(report.new)
    assert accounted == set(model.state_dict())
    table = report.table()
    for word in InflationReport.CATEGORIES:
        assert word in table
    assert 'temporal_layers.0.attn.qkv.{weight,bias}' in table


def test_fold_keys():
    assert fold_keys(['layers.0.a.weight', 'layers.1.a.weight',
                      'layers.0.a.bias', 'layers.1.a.bias', 'norm.bias']) \
        == 'layers.{0-1}.a.{weight,bias}, norm.bias'


def test_report_is_logged(tmp_path):
    log_file = tmp_path / 'inflation.log'
    logger = MMLogger.get_instance('vivit_inflation_test',
                                   log_file=str(log_file))
    model = vivit(ViViTM1, pooling='gap')
    inflate_image_weights(model, image_sd(image_vit()),
                          logger=logger.instance_name)
    text = log_file.read_text()
    assert 'parameter report' in text
    assert re.search(r'unused +\| +3 \| backbone\.cls_token', text)
