"""Stack output names: the program exports these and the tests and scripts read them."""

from typing import Final

BROKER_ENDPOINT: Final = "brokerEndpoint"
"""host:port of the broker; exported as a secret."""
BROKER_SECRET_ARN: Final = "brokerSecretArn"  # noqa: S105 - an output name, not a password
"""Secrets Manager secret holding CELERY_BROKER_URL (the value itself is never an output)."""
BROKER_ENGINE: Final = "brokerEngine"
POOL_ASG_NAMES: Final = "poolAsgNames"
"""{pool: Auto Scaling group name}."""
POOL_REFRESH: Final = "poolRefresh"
"""{pool: plan} for the deploy step's canary refresh (infra.cli.canary_rollout): the group, the launch template
version to roll out, and the StartInstanceRefresh preferences (checkpoints, AutoRollback, alarms)."""
PLAN_ASG_NAME: Final = "asgName"
PLAN_TEMPLATE_ID: Final = "launchTemplateId"
PLAN_TEMPLATE_VERSION: Final = "launchTemplateVersion"
PLAN_PREFERENCES: Final = "preferences"
DASHBOARD_URL: Final = "dashboardUrl"
ALARM_TOPIC_ARN: Final = "alarmTopicArn"
METRIC_NAMESPACE: Final = "metricNamespace"
VPC_ID: Final = "vpcId"
PUBLISHER_FUNCTION_NAME: Final = "publisherFunctionName"
SMOKE_FUNCTION_NAME: Final = "smokeFunctionName"
"""The Lambda that runs the smoke test inside the VPC (`scripts/smoke --stack` invokes it)."""
SMOKE_RESULTS_QUEUE_URL: Final = "smokeResultsQueueUrl"
"""The SQS queue Lambda sends each smoke run's record to (`scripts/smoke --stack` polls it for its run's)."""
WORKER_IMAGE_IDS: Final = "workerImageIds"
"""{pool: AMI id its launch template uses} (the baked image in imageMode bake)."""
PRODUCER_SECRET_ARN: Final = "producerSecretArn"  # noqa: S105 - an output name, not a password
"""Secrets Manager secret for producers: broker URL, task routes, queue type (`client_app` reads it)."""
PRODUCER_POLICY_ARN: Final = "producerPolicyArn"
"""IAM managed policy that can read the producer secret and nothing else: attach it to producer roles."""
BROKER_SECURITY_GROUP_ID: Final = "brokerSecurityGroupId"
"""The broker's security group (brokerClientSecurityGroupIds / brokerClientCidrs admit producers to it)."""

ALL: Final = (
    BROKER_ENDPOINT,
    BROKER_SECRET_ARN,
    BROKER_ENGINE,
    POOL_ASG_NAMES,
    POOL_REFRESH,
    DASHBOARD_URL,
    ALARM_TOPIC_ARN,
    METRIC_NAMESPACE,
    VPC_ID,
    PUBLISHER_FUNCTION_NAME,
    SMOKE_FUNCTION_NAME,
    SMOKE_RESULTS_QUEUE_URL,
    WORKER_IMAGE_IDS,
    PRODUCER_SECRET_ARN,
    PRODUCER_POLICY_ARN,
    BROKER_SECURITY_GROUP_ID,
)
SECRET: Final = frozenset({BROKER_ENDPOINT})
