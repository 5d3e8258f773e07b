"""The error codes of compute's refusals (``ServiceError.code``): what API clients and tests match on.

A StrEnum, so a code is still its string in JSON and compares equal to it. The drivers have
their own codes (``compute.drivers.base.ErrorCode``): a driver error that reaches a person
becomes one of these.
"""

from enum import StrEnum


class ComputeError(StrEnum):
    # inventory: endpoints, sites, clusters, pools
    ENDPOINT_NAME_INVALID = "endpoint_name_invalid"
    ENDPOINT_NAME_TAKEN = "endpoint_name_taken"
    ENDPOINT_KIND_INVALID = "endpoint_kind_invalid"
    ENDPOINT_DOMAIN_TYPE_INVALID = "endpoint_domain_type_invalid"
    ENDPOINT_URL_MISSING = "endpoint_url_missing"
    ENDPOINT_CREDENTIALS_REFUSED = "endpoint_credentials_refused"
    ENDPOINT_UNREACHABLE = "endpoint_unreachable"
    ENDPOINT_CONCURRENCY_INVALID = "endpoint_concurrency_invalid"
    ENDPOINT_NOT_FOUND = "endpoint_not_found"
    ENDPOINT_HAS_NO_POOL = "endpoint_has_no_pool"
    SYSTEM_ADMIN_ONLY = "system_admin_only"
    INVENTORY_INVALID = "inventory_invalid"
    INVENTORY_NAME_TAKEN = "inventory_name_taken"
    POOL_CREATE_UNSUPPORTED = "pool_create_unsupported"
    POOL_CREATE_FAILED = "pool_create_failed"
    TENANT_NOT_FOUND = "tenant_not_found"
    # hosts (compute nodes)
    HOST_URI_INVALID = "host_uri_invalid"
    HOST_ADDRESS_TAKEN = "host_address_taken"
    HOST_NOT_FOUND = "host_not_found"
    HOST_HAS_DESKTOPS = "host_has_desktops"
    HOST_UNREACHABLE = "host_unreachable"
    HOST_CREDENTIALS_REFUSED = "host_credentials_refused"
    HOST_CERTIFICATE_REFUSED = "host_certificate_refused"
    HOST_STATE_INVALID = "host_state_invalid"
    HOST_DATA_ADDRESS_INVALID = "host_data_address_invalid"
    HOST_DATA_ADDRESS_TAKEN = "host_data_address_taken"
    HOST_DATA_ADDRESS_LOCKED = "host_data_address_locked"
    CLUSTER_NOT_FOUND = "cluster_not_found"
    SHARED_STORAGE_INVALID = "shared_storage_invalid"
    SHARED_STORAGE_FAILED = "shared_storage_failed"

    # migration
    MIGRATION_HOST_SAME = "migration_host_same"
    MIGRATION_OTHER_CLUSTER = "migration_other_cluster"
    MIGRATION_HOST_UNAVAILABLE = "migration_host_unavailable"
    MIGRATION_NETWORK_MISSING = "migration_network_missing"
    MIGRATION_STORAGE_MISSING = "migration_storage_missing"
    MIGRATION_UNSUPPORTED = "migration_unsupported"
    MIGRATION_NOT_RUNNING = "migration_not_running"
    DRS_POLICY_INVALID = "drs_policy_invalid"
    HA_NOTHING_TO_CLEAR = "ha_nothing_to_clear"
    HA_ADMIN_ONLY = "ha_admin_only"
    HA_SETTINGS_INVALID = "ha_settings_invalid"
    HA_BMC_INVALID = "ha_bmc_invalid"

    # images and flavors
    IMAGE_NAME_MISSING = "image_name_missing"
    IMAGE_TENANT_MISSING = "image_tenant_missing"
    IMAGE_COURSE_MISSING = "image_course_missing"
    IMAGE_VOLUME_MISSING = "image_volume_missing"
    IMAGE_TEMPLATE_MISSING = "image_template_missing"
    IMAGE_BOOT_PATH_INVALID = "image_boot_path_invalid"
    IMAGE_BOOT_KERNEL_MISSING = "image_boot_kernel_missing"
    IMAGE_BOOT_CMDLINE_INVALID = "image_boot_cmdline_invalid"
    IMAGE_TEMPLATE_NOT_FOUND = "image_template_not_found"
    IMAGE_CHECK_FAILED = "image_check_failed"
    IMAGE_BAD_FORMAT = "image_bad_format"
    IMAGE_HAS_BACKING_FILE = "image_has_backing_file"
    IMAGE_TOO_SMALL = "image_too_small"
    IMAGE_UPLOAD_UNSUPPORTED = "image_upload_unsupported"
    UPLOAD_OFFSET_MISMATCH = "upload_offset_mismatch"
    IMAGE_NOT_FOUND = "image_not_found"
    IMAGE_NOT_READY = "image_not_ready"
    IMAGE_VERSION_INVALID_TRANSITION = "image_version_invalid_transition"
    IMAGE_VERSION_IN_USE = "image_version_in_use"
    FLAVOR_INVALID = "flavor_invalid"
    FLAVOR_NAME_TAKEN = "flavor_name_taken"
    FLAVOR_NOT_FOUND = "flavor_not_found"
    FLAVOR_DISK_TOO_SMALL = "flavor_disk_too_small"

    # placement
    NO_HOST = "no_host"
    NO_CAPACITY = "no_capacity"
    FLAVOR_TOO_LARGE = "flavor_too_large"
    FLAVOR_NEEDS_GPU_CLUSTER = "flavor_needs_gpu_cluster"

    # desktops
    DESKTOP_READ_ONLY = "desktop_read_only"
    DESKTOP_OWNER_FORBIDDEN = "desktop_owner_forbidden"
    COURSE_TENANT_MISMATCH = "course_tenant_mismatch"
    COURSE_NOT_ENROLLED = "course_not_enrolled"
    DESKTOP_INVALID_TRANSITION = "desktop_invalid_transition"
    DESKTOP_MUST_BE_STOPPED = "desktop_must_be_stopped"
    DESKTOP_NOT_CLONABLE = "desktop_not_clonable"
    DESKTOP_NOT_RESETTABLE = "desktop_not_resettable"
    DESKTOP_SAME_FLAVOR = "desktop_same_flavor"
    POWER_VERB_INVALID = "power_verb_invalid"

    # snapshots and data disks
    SNAPSHOT_NAME_INVALID = "snapshot_name_invalid"
    SNAPSHOT_NAME_TAKEN = "snapshot_name_taken"
    SNAPSHOT_NOT_READY = "snapshot_not_ready"
    VOLUME_SIZE_INVALID = "volume_size_invalid"
    VOLUME_NOT_FOUND = "volume_not_found"
    VOLUME_READ_ONLY = "volume_read_only"
    VOLUME_IN_USE = "volume_in_use"
    VOLUME_NOT_ATTACHED = "volume_not_attached"
    VOLUME_OTHER_ENDPOINT = "volume_other_endpoint"
