"""Attribution and class activation maps: which parts of a probe a classifier's score rests on.

One family, one pipeline (``pipeline.Explainer``: class scores, one compiled call, one neutral
``result.Attribution``). ``cams`` holds the class activation maps, which differ only in how a
layer's channels are weighed; ``gradients`` and ``occlusion`` attribute the score to the input;
``methods`` names them all for the loggers, ``notebook`` is their public face; ``sanity`` checks
that a map depends on the model. Measures of how faithful a map is belong here too, beside
``sanity``.
"""
