# The MonkeyCI agent's image for Oracle Cloud (OCI): a base Ubuntu/Debian
# image plus Docker, the static monkeyci binary and the monkeyci-agent unit
# (enabled, not started). Each instance of the pool configures and starts
# the agent on its first boot from its cloud-init user data (see README.md).
#
#   make build && packer build -var compartment_ocid=... -var subnet_ocid=... \
#     -var availability_domain=... -var base_image_ocid=... packer/agent.pkr.hcl
#
# Written for Debian's packer package (1.6.6): its oracle-oci builder has no
# shape_config block, so a flexible shape's build VM gets the shape's default
# OCPUs and memory. The image does not depend on them: the pool's instance
# configuration sizes the agents.

packer {
  required_version = ">= 1.6.6"
}

# OCI access: the builder reads an OCI CLI config file (user, tenancy,
# fingerprint, key_file, region). Empty means its own default, ~/.oci/config.
variable "access_cfg_file" {
  type        = string
  default     = ""
  description = "OCI config file with the API key to build with; empty: ~/.oci/config."
}

variable "access_cfg_file_account" {
  type        = string
  default     = "DEFAULT"
  description = "Profile of access_cfg_file to use."
}

variable "region" {
  type        = string
  default     = ""
  description = "OCI region, like eu-frankfurt-1; empty: the config file's."
}

variable "compartment_ocid" {
  type        = string
  description = "Compartment the build VM and the image go to."

  # These checks catch swapped -var values before anything is launched.
  # (1.6.6 has no regex function; can() of it is always false.)

  validation {
    condition     = substr(var.compartment_ocid, 0, 18) == "ocid1.compartment." || substr(var.compartment_ocid, 0, 14) == "ocid1.tenancy."
    error_message = "The compartment_ocid must be a compartment's (or the tenancy's) OCID."
  }
}

variable "subnet_ocid" {
  type        = string
  description = "Subnet of the build VM. Packer reaches it over SSH on its public IP."

  validation {
    condition     = substr(var.subnet_ocid, 0, 13) == "ocid1.subnet."
    error_message = "The subnet_ocid must be a subnet's OCID."
  }
}

variable "availability_domain" {
  type        = string
  description = "Availability domain of the build VM, like Uocm:EU-FRANKFURT-1-AD-1."
}

variable "base_image_ocid" {
  type        = string
  description = "Base image: an Ubuntu or Debian platform image with cloud-init, for shape's architecture."

  validation {
    condition     = substr(var.base_image_ocid, 0, 12) == "ocid1.image."
    error_message = "The base_image_ocid must be an image's OCID."
  }
}

variable "shape" {
  type        = string
  default     = "VM.Standard.E4.Flex"
  description = "Shape of the build VM (x86_64: make build makes an amd64 binary)."
}

variable "ssh_username" {
  type        = string
  default     = "ubuntu"
  description = "The base image's default user: ubuntu on Ubuntu, debian on Debian."
}

variable "image_name" {
  type        = string
  default     = ""
  description = "Name of the image; empty: monkeyci-agent-<UTC timestamp>."
}

variable "monkeyci_binary" {
  type        = string
  default     = "../bin/monkeyci"
  description = "The static monkeyci binary (make build); a relative path is from this file's folder."
}

locals {
  image_name = var.image_name != "" ? var.image_name : "monkeyci-agent-${formatdate("YYYYMMDD-hhmmss", timestamp())}"
  # Relative to the template, not to wherever packer runs.
  monkeyci_binary = substr(var.monkeyci_binary, 0, 1) == "/" ? var.monkeyci_binary : "${path.root}/${var.monkeyci_binary}"
}

source "oracle-oci" "agent" {
  access_cfg_file         = var.access_cfg_file
  access_cfg_file_account = var.access_cfg_file_account
  region                  = var.region

  compartment_ocid    = var.compartment_ocid
  availability_domain = var.availability_domain
  subnet_ocid         = var.subnet_ocid
  base_image_ocid     = var.base_image_ocid
  shape               = var.shape
  image_name          = local.image_name
  # The builder makes a throwaway key pair and hands its public half to the
  # VM's cloud-init; provision.sh removes it from the image.
  ssh_username = var.ssh_username
}

build {
  sources = ["source.oracle-oci.agent"]

  # Uploads go to /tmp: the SSH user cannot write /usr/local/bin or
  # /etc/systemd; provision.sh installs them as root.
  provisioner "file" {
    source      = local.monkeyci_binary
    destination = "/tmp/monkeyci"
  }

  provisioner "file" {
    source      = "${path.root}/monkeyci-agent.service"
    destination = "/tmp/monkeyci-agent.service"
  }

  # The firewall (containers kept from the metadata service and from each
  # other's networks), and address pools for a network per build
  # (README.md).
  provisioner "file" {
    source      = "${path.root}/monkeyci-firewall.service"
    destination = "/tmp/monkeyci-firewall.service"
  }

  provisioner "file" {
    source      = "${path.root}/firewall.sh"
    destination = "/tmp/firewall.sh"
  }

  provisioner "file" {
    source      = "${path.root}/docker-daemon.json"
    destination = "/tmp/docker-daemon.json"
  }

  provisioner "shell" {
    script           = "${path.root}/provision.sh"
    environment_vars = ["SSH_USERNAME=${var.ssh_username}"]
    execute_command  = "sudo {{ .Vars }} sh {{ .Path }}"
  }
}
