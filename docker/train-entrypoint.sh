#!/bin/sh
# Entry point of the retraining image and CronJob: train -> evaluate -> promote.
#
#   octopi-train [CONFIG] [octopi-serve retrain options]
#
# CONFIG is a training config file or a preset (card, cpu, tiny; default card). The registry is
# OCTOPI_REGISTRY_URI (a directory or s3://bucket/prefix; S3 credentials and endpoint from AWS_*).
# Runs and held-out tomograms go under the working directory. The candidate is recorded in the registry;
# the champion pointer moves only when the candidate scores higher on the held-out set. stdout ends with
# the promotion result as JSON. Exit status: 0 done (promoted or not), 2 a usage or input
# error, anything else a failure.
set -eu

if [ -z "${OCTOPI_REGISTRY_URI:-}" ]; then
    echo "octopi-train: set OCTOPI_REGISTRY_URI to the model registry (a directory or s3://bucket/prefix)" >&2
    exit 2
fi
if [ "$#" -eq 0 ]; then
    set -- card
fi
exec octopi-serve retrain "$@" --registry "$OCTOPI_REGISTRY_URI"
