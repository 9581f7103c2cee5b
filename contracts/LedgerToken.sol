// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/**
 * @title LedgerToken
 * @notice The reward and stake token LoRA Ledger ships for local chains. Any ERC-20 works for
 * a task; this one lets a local deployment mint what sponsors and nodes need.
 */
contract LedgerToken is ERC20, AccessControl {
    /// @notice Role allowed to mint.
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /**
     * @param admin account given `DEFAULT_ADMIN_ROLE` and `MINTER_ROLE`
     * @param initialSupply tokens minted to `admin`
     */
    constructor(address admin, uint256 initialSupply) ERC20("LoRA Ledger Token", "LLT") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, admin);
        _mint(admin, initialSupply);
    }

    /**
     * @notice Mints `amount` tokens to `to`.
     *
     * Requirements: the caller has `MINTER_ROLE`.
     *
     * Emits: {Transfer} from the zero address.
     */
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }
}
